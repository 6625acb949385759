#!/usr/bin/env bash
# Which replayer serves config/gor.options on the dyno:
#   - the app's own bin/gor, when the app commits one (kept as it is);
#   - else the buildpack's vendor/gor/gor, copied to the slug's bin/gor;
#   - else the built-in replayer (python -m traffic_duplicator.replay).
# A marker remembers which bin/gor we copied, so a rebuild in the same directory can tell
# our copy from the app's and replace or remove it.

set -euo pipefail

TD_GOR_MARKER=".traffic-duplicator/gor-from-buildpack.sha256"
# Seconds a gor binary gets to print its help at build time.
TD_GOR_HELP_TIMEOUT=5

# Set by gor::select: builtin | app | buildpack, and a description for the summary;
# by gor::apply_settings: whether the options may use flags only a real gor has (yes | no).
TD_GOR_SOURCE="builtin"
TD_GOR_DESCRIPTION="the built-in replayer"
TD_GOR_AVAILABLE="no"

function gor::select() {
	local buildpack_dir="${1}" build_dir="${2}"
	local slug_gor="${build_dir}/bin/gor"
	local vendor_gor="${buildpack_dir}/vendor/gor/gor"
	local marker="${build_dir}/${TD_GOR_MARKER}"

	output::step "Choosing the replayer (gor or built-in)"

	# A bin/gor that is byte-for-byte what we copied last time is ours, not the app's.
	if [[ -f "${slug_gor}" && -f "${marker}" ]] &&
		[[ "$(gor::_sha256 "${slug_gor}")" == "$(cat "${marker}")" ]]; then
		rm -f "${slug_gor}"
	fi
	rm -f "${marker}"

	if [[ -e "${slug_gor}" ]]; then
		TD_GOR_SOURCE="app"
		gor::_describe "${slug_gor}" "the app's bin/gor"
		if [[ -f "${vendor_gor}" ]]; then
			output::info "Keeping the app's bin/gor; the buildpack's vendor/gor/gor is not used"
		fi
	elif [[ -f "${vendor_gor}" ]]; then
		TD_GOR_SOURCE="buildpack"
		mkdir -p "${build_dir}/bin"
		cp "${vendor_gor}" "${slug_gor}"
		chmod 0755 "${slug_gor}"
		gor::_sha256 "${slug_gor}" >"${marker}"
		gor::_describe "${slug_gor}" "bin/gor, copied from the buildpack's vendor/gor/gor"
	else
		TD_GOR_SOURCE="builtin"
		TD_GOR_DESCRIPTION="the built-in replayer (python -m traffic_duplicator.replay)"
		output::info "No gor binary in the app (bin/gor) or the buildpack (vendor/gor/gor)"
		output::info "Using ${TD_GOR_DESCRIPTION}"
	fi
}

# Decides whether a real gor will replay on the dyno, from the slug and the config vars the
# wrapper reads (TRAFFIC_DUPLICATOR_REPLAYER, TRAFFIC_DUPLICATOR_GOR), and sets
# TD_GOR_AVAILABLE to yes or no. The options check must agree with the wrapper, or a file
# that builds could still fail at boot.
function gor::apply_settings() {
	local env_dir="${1}"
	local replayer gor_setting
	replayer="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_REPLAYER | tr -d '[:space:]' | tr '[:upper:]' '[:lower:]')"
	gor_setting="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_GOR | tr -d '[:space:]')"
	if [[ "${replayer}" == "builtin" ]]; then
		TD_GOR_AVAILABLE="no"
		TD_GOR_DESCRIPTION="the built-in replayer (TRAFFIC_DUPLICATOR_REPLAYER=builtin)"
		output::info "TRAFFIC_DUPLICATOR_REPLAYER=builtin is set: the dyno uses the built-in replayer"
	elif [[ -n "${gor_setting}" ]]; then
		TD_GOR_AVAILABLE="yes"
		TD_GOR_DESCRIPTION="the gor at TRAFFIC_DUPLICATOR_GOR=${gor_setting} (not checked at build time)"
		output::info "TRAFFIC_DUPLICATOR_GOR is set: the dyno uses ${gor_setting}"
	elif [[ "${TD_GOR_SOURCE}" != "builtin" ]]; then
		TD_GOR_AVAILABLE="yes"
	else
		TD_GOR_AVAILABLE="no"
	fi
}

# yes or no, as options::validate takes it.
function gor::available() {
	echo "${TD_GOR_AVAILABLE}"
}

function gor::_sha256() {
	sha256sum "${1}" | cut -d ' ' -f 1
}

# Runs `gor --help`, as the wrapper does at run time, to report the version (gor prints
# "Current Version: X" in its usage) and how it will be fed: a gor that lists --input-http
# (v0.14 and older) takes plain HTTP; a newer one gets GoReplay's framing on --input-tcp.
# Fails the build when the binary cannot run here: it would not run on the dyno either.
function gor::_describe() {
	local gor="${1}" where="${2}"
	local help status=0 version=""
	if [[ ! -x "${gor}" ]]; then
		gor::_fail_unrunnable "${gor}" "${where}" "it is not executable (chmod +x bin/gor, then commit)"
	fi
	# A Linux program starts with an ELF header or a #! line; anything else (a macOS or
	# Windows build, an HTML error page saved by mistake) would only confuse the shell.
	case "$(head -c 4 "${gor}" | od -An -c | tr -d ' \n')" in
		177ELF* | \#!*) ;;
		*) gor::_fail_unrunnable "${gor}" "${where}" "it is not a Linux program (no ELF header or #! line)" ;;
	esac
	help="$(timeout "${TD_GOR_HELP_TIMEOUT}" "${gor}" --help 2>&1 </dev/null)" || status=$?
	case "${status}" in
		126 | 127)
			# Only printable text: for a foreign binary the shell may echo its bytes back.
			gor::_fail_unrunnable "${gor}" "${where}" \
				"$(head -n 1 <<<"${help}" | LC_ALL=C tr -cd '[:print:]' | cut -c 1-160)"
			;;
		124)
			gor::_fail_unrunnable "${gor}" "${where}" "'gor --help' did not finish within ${TD_GOR_HELP_TIMEOUT}s"
			;;
	esac
	if [[ "${help}" =~ [Vv]ersion:?[[:space:]]*v?([0-9]+(\.[0-9]+)+) ]]; then
		version="${BASH_REMATCH[1]}"
	fi
	TD_GOR_DESCRIPTION="gor ${version:-(version unknown)} (${where})"
	output::info "Using ${TD_GOR_DESCRIPTION}"
	if [[ "${help}" =~ (^|[^[:alnum:]-])--?input-http([^[:alnum:]-]|$) ]]; then
		output::info "It lists --input-http (v0.14 or older): it is fed plain HTTP, and em-proxy can feed it too"
	else
		output::info "It has no --input-http (v0.15 or newer): the built-in proxy feeds it GoReplay framing on --input-tcp"
	fi
}

function gor::_fail_unrunnable() {
	local gor="${1}" where="${2}" problem="${3}"
	output::error <<-EOF
		Error: ${where} cannot run: ${problem#"${gor}: "}.

		A gor binary that does not run here will not run on the dyno either.

		To fix:
		1. Replace it with a Linux $(uname -m) build of gor (see vendor/gor/README.md in the buildpack).
		2. Or delete it to use the built-in replayer: git rm bin/gor && git commit -m "Use the built-in replayer"
		3. Push again.

		${TD_DOCS_URL}
	EOF
	exit 1
}
