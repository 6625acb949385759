#!/usr/bin/env bash
# The Python that runs traffic-duplicator on the dyno, chosen per stack:
#   - the app's own interpreter when the slug already has one (.heroku/python);
#   - heroku-22: the stack's python3 (3.10);
#   - heroku-24, heroku-26 or any other stack: a pinned CPython from the same runtime
#     archives heroku/python installs, unpacked into .traffic-duplicator/python.
# The archive is cached in CACHE_DIR, keyed by its URL, so later builds do not download it.

set -euo pipefail

# The one place the runtime version is pinned. heroku/python builds each 3.13 release for
# heroku-22, heroku-24 and heroku-26 (amd64; arm64 from heroku-24 on).
TD_PYTHON_VERSION="3.13.15"
# Where heroku/python publishes its runtime archives (see its lib/python.sh); an archive is
# python-VERSION-ubuntu-UBUNTU_VERSION-ARCH.tar.zst and unpacks to bin/, lib/, include/.
TD_PYTHON_BASE_URL="https://heroku-buildpack-python.s3.us-east-1.amazonaws.com"
# The package's floor (pyproject.toml: requires-python >= 3.10).
TD_PYTHON_MIN_MAJOR=3
TD_PYTHON_MIN_MINOR=10

# Set by python::select: a description of the dyno's Python for the summary, and the
# interpreter the build itself uses to validate config and byte-compile the package.
TD_PYTHON_DESCRIPTION=""
TD_BUILD_PYTHON=""
# default | override: where the runtime URL came from, so errors give the right fix.
TD_PYTHON_URL_ORIGIN="default"

# The default archive URL for a stack, e.g. heroku-24 on amd64 ->
# .../python-3.13.15-ubuntu-24.04-amd64.tar.zst. Stacks not named heroku-NN fall back to the
# Ubuntu 24.04 build (a warning says so).
function python::default_url() {
	local stack="${1}"
	local ubuntu_version="24.04"
	if [[ "${stack}" =~ ^heroku-([0-9]+)$ ]]; then
		ubuntu_version="${BASH_REMATCH[1]}.04"
	fi
	echo "${TD_PYTHON_BASE_URL}/python-${TD_PYTHON_VERSION}-ubuntu-${ubuntu_version}-$(python::arch).tar.zst"
}

# Debian's name for this machine's CPU architecture (amd64, arm64), as the archive names use.
function python::arch() {
	local arch=""
	if command -v dpkg >/dev/null 2>&1; then
		arch="$(dpkg --print-architecture 2>/dev/null || true)"
	fi
	if [[ -z "${arch}" ]]; then
		case "$(uname -m)" in
			x86_64) arch="amd64" ;;
			aarch64 | arm64) arch="arm64" ;;
			*) arch="$(uname -m)" ;;
		esac
	fi
	echo "${arch}"
}

# Chooses the dyno's Python and makes sure the build has one to validate config with.
# Sets TD_PYTHON_DESCRIPTION and TD_BUILD_PYTHON.
function python::select() {
	local build_dir="${1}" cache_dir="${2}" env_dir="${3}" stack="${4}"
	local install_dir="${build_dir}/.traffic-duplicator/python"
	local override_url version stack_python=""
	override_url="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_PYTHON_URL | tr -d '[:space:]')"

	output::step "Choosing the Python for traffic-duplicator (stack: ${stack:-unknown})"

	# 1. The app's own interpreter. It is only in BUILD_DIR when heroku/python ran before
	#    us or the cache restored it; on a first build with this buildpack at index 1 it is
	#    not there yet, and the launcher still prefers it at run time when it appears.
	local app_python="${build_dir}/.heroku/python/bin/python3"
	if version="$(utils::python_version "${app_python}")" &&
		utils::version_at_least "${version}" "${TD_PYTHON_MIN_MAJOR}" "${TD_PYTHON_MIN_MINOR}"; then
		python::_remove_runtime "${install_dir}"
		TD_BUILD_PYTHON="${app_python}"
		TD_PYTHON_DESCRIPTION="the app's Python ${version} (.heroku/python)"
		output::info "Using ${TD_PYTHON_DESCRIPTION}; no download needed"
		return 0
	fi

	# 2. heroku-22 dynos have python3 3.10 in the stack image.
	if [[ "${stack}" == "heroku-22" ]]; then
		if stack_python="$(command -v python3)" &&
			version="$(utils::python_version "${stack_python}")" &&
			utils::version_at_least "${version}" "${TD_PYTHON_MIN_MAJOR}" "${TD_PYTHON_MIN_MINOR}"; then
			python::_remove_runtime "${install_dir}"
			TD_BUILD_PYTHON="${stack_python}"
			TD_PYTHON_DESCRIPTION="the stack's python3 ${version}"
			output::info "Using ${TD_PYTHON_DESCRIPTION} (heroku-22 ships it on dynos)"
			return 0
		fi
		output::info "No python3 >= ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR} found on this heroku-22 build image; installing one"
	fi

	# 3. Everything else: heroku-24 and heroku-26 dynos have no python3 at all.
	local url="${override_url}"
	if [[ -n "${url}" ]]; then
		TD_PYTHON_URL_ORIGIN="override"
		output::info "Installing the Python runtime from TRAFFIC_DUPLICATOR_PYTHON_URL"
	else
		TD_PYTHON_URL_ORIGIN="default"
		if [[ ! "${stack}" =~ ^heroku-[0-9]+$ ]]; then
			output::warning <<-EOF
				Warning: unknown stack '${stack}'; using the Ubuntu 24.04 Python build.

				If Python fails to start on your dynos, set TRAFFIC_DUPLICATOR_PYTHON_URL
				to a runtime archive built for your stack, then build again.
			EOF
		fi
		url="$(python::default_url "${stack}")"
		output::info "Installing Python ${TD_PYTHON_VERSION} (heroku/python's runtime archive)"
	fi
	python::install_runtime "${install_dir}" "${cache_dir}" "${url}"
	TD_BUILD_PYTHON="${install_dir}/bin/python3"
	python::check_runtime "${TD_BUILD_PYTHON}" "${url}"
	version="${TD_RUNTIME_VERSION}"
	TD_PYTHON_DESCRIPTION="Python ${version} (.traffic-duplicator/python)"
	output::info "Installed ${TD_PYTHON_DESCRIPTION}"
}

# Set by python::check_runtime: the version of the runtime it checked, e.g. 3.13.15.
TD_RUNTIME_VERSION=""

# Fails the build unless PYTHON, a runtime just unpacked from URL, runs on this machine and
# is new enough. Sets TD_RUNTIME_VERSION.
function python::check_runtime() {
	local python="${1}" url="${2}"
	if ! TD_RUNTIME_VERSION="$(utils::python_version "${python}")"; then
		python::_fail_unusable "${url}" "bin/python3 did not run on this build machine"
	fi
	if ! utils::version_at_least "${TD_RUNTIME_VERSION}" "${TD_PYTHON_MIN_MAJOR}" "${TD_PYTHON_MIN_MINOR}"; then
		python::_fail_unusable "${url}" "it is Python ${TD_RUNTIME_VERSION}; traffic-duplicator needs ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR} or newer"
	fi
}

# Unpacks the runtime archive at URL into INSTALL_DIR, downloading it only when CACHE_DIR
# does not hold it yet. A cached archive that no longer unpacks is dropped and fetched again.
function python::install_runtime() {
	local install_dir="${1}" cache_dir="${2}" url="${3}"
	local archive_dir="${cache_dir}/traffic-duplicator/python-archives"
	local key archive
	key="$(printf '%s' "${url}" | utils::sha256 | cut -c1-32)"
	archive="${archive_dir}/${key}.archive"
	mkdir -p "${archive_dir}"

	if [[ -s "${archive}" ]]; then
		output::info "Using the cached runtime archive (${url##*/})"
		if python::_unpack "${archive}" "${install_dir}" "${cache_dir}"; then
			python::_prune_cache "${archive_dir}" "${key}"
			return 0
		fi
		output::info "The cached archive is damaged; downloading it again"
		rm -f "${archive}" "${archive_dir}/${key}.url"
	fi

	output::info "Downloading ${url}"
	python::_download "${url}" "${archive}" "${cache_dir}"
	printf '%s\n' "${url}" >"${archive_dir}/${key}.url"
	if ! python::_unpack "${archive}" "${install_dir}" "${cache_dir}"; then
		rm -f "${archive}" "${archive_dir}/${key}.url"
		python::_fail_bad_archive "${url}" "${TD_UNPACK_PROBLEM}"
	fi
	python::_prune_cache "${archive_dir}" "${key}"
}

# Keeps only the archive for the URL in use, so the cache does not grow with every pin bump.
function python::_prune_cache() {
	local archive_dir="${1}" keep_key="${2}"
	local path
	for path in "${archive_dir}"/*; do
		[[ -e "${path}" ]] || continue
		case "${path##*/}" in
			"${keep_key}".*) ;;
			*) rm -rf "${path}" ;;
		esac
	done
}

# Downloads URL to DEST (utils::download). Each kind of failure (TD_DOWNLOAD_KIND, and the
# HTTP status for a missing archive) gets its own fix.
function python::_download() {
	local url="${1}" dest="${2}" cache_dir="${3}"
	if utils::download "${url}" "${dest}" "${cache_dir}"; then
		return 0
	fi
	local http_code="${TD_DOWNLOAD_HTTP_CODE}" problem="${TD_DOWNLOAD_PROBLEM}" fix
	local fix_url="Check the URL in TRAFFIC_DUPLICATOR_PYTHON_URL (heroku config:get TRAFFIC_DUPLICATOR_PYTHON_URL), or unset it to use heroku/python's archive (heroku config:unset TRAFFIC_DUPLICATOR_PYTHON_URL)."
	local fix_two="If your builds cannot reach it, copy the archive to a server they can reach and set TRAFFIC_DUPLICATOR_PYTHON_URL to the copy's full URL."
	case "${TD_DOWNLOAD_KIND}:${http_code}" in
		dns:*) fix="Check that the build machine can resolve and reach ${TD_PYTHON_BASE_URL#https://}." ;;
		unreachable:*) fix="Wait a minute: the server may be briefly unavailable." ;;
		timeout:*) fix="Wait a minute: the network or the server may be slow for a moment." ;;
		http:404 | http:403 | http:410)
			problem="there is no archive at that URL (HTTP ${http_code})"
			fix="heroku/python has no Python ${TD_PYTHON_VERSION} build for this stack and CPU ($(python::arch)): move the app to a supported stack, e.g. heroku stack:set heroku-24."
			fix_two="$(python::_pick_fix "Make sure the archive there is a CPython ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ built for this stack and CPU, with bin/python3 and lib/ at its top level." "Or set TRAFFIC_DUPLICATOR_PYTHON_URL to the full URL of a CPython ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ archive with the same layout, built for this stack.")"
			;;
		http:*) fix="Wait a minute: server errors are usually temporary." ;;
		tls:*)
			fix="Check the build machine's CA certificates and clock."
			fix_two="Serve the archive from a host with a publicly trusted certificate."
			;;
		url:*)
			# The URL itself is unusable, wherever it came from.
			fix_url="Set TRAFFIC_DUPLICATOR_PYTHON_URL to a full http:// or https:// URL of a runtime archive."
			fix="${fix_url}"
			fix_two="Or unset it to use heroku/python's archive: heroku config:unset TRAFFIC_DUPLICATOR_PYTHON_URL"
			;;
		disk:*) fix="Check that the build has free disk space, then retry the build." ;;
		*) fix="Wait a minute: most download failures are temporary." ;;
	esac
	python::_fail_download "${url}" "${problem}" "${TD_DOWNLOAD_SAID}" \
		"$(python::_pick_fix "${fix_url}" "${fix}")" "${fix_two}"
}

# The first fix when the URL came from TRAFFIC_DUPLICATOR_PYTHON_URL, else the second.
function python::_pick_fix() {
	if [[ "${TD_PYTHON_URL_ORIGIN}" == "override" ]]; then
		echo "${1}"
	else
		echo "${2}"
	fi
}

function python::_fail_download() {
	local url="${1}" problem="${2}" curl_said="${3}" fix_one="${4}" fix_two="${5}"
	local origin="the default for stack ${STACK:-unknown}"
	if [[ "${TD_PYTHON_URL_ORIGIN}" == "override" ]]; then
		origin="the TRAFFIC_DUPLICATOR_PYTHON_URL config var"
	fi
	output::error <<-EOF
		Error: could not download the Python runtime: ${problem}.

		URL: ${url}
		     (${origin})
		curl said: ${curl_said:-nothing}

		To fix:
		1. ${fix_one}
		2. ${fix_two}
		3. Build again, e.g. git commit --allow-empty -m "Rebuild" && git push heroku main

		Python on each stack: ${TD_DOCS_URL}
	EOF
	exit 1
}

# Set by python::_unpack when it fails: what was wrong with the archive.
TD_UNPACK_PROBLEM=""

# Unpacks ARCHIVE into INSTALL_DIR through a staging directory, so a failed unpack never
# leaves half a runtime in the slug. Fails (with TD_UNPACK_PROBLEM set) when the file is not
# a tar archive we can read or lacks bin/python3.
function python::_unpack() {
	local archive="${1}" install_dir="${2}" cache_dir="${3}"
	local staging="${install_dir}.partial"
	local scratch tar_log
	scratch="$(utils::scratch_dir "${cache_dir}")"
	tar_log="${scratch}/tar-error.log"
	rm -rf "${staging}"
	mkdir -p "${staging}"

	local tar_args=(--extract --file "${archive}" --directory "${staging}" --no-same-owner)
	case "$(python::_compression "${archive}")" in
		zstd)
			if ! command -v zstd >/dev/null 2>&1; then
				TD_UNPACK_PROBLEM="it is zstd-compressed and this build machine has no zstd"
				rm -rf "${staging}"
				return 1
			fi
			tar_args+=(--zstd)
			;;
		gzip) tar_args+=(--gzip) ;;
		xz) tar_args+=(--xz) ;;
		tar) ;;
		*)
			TD_UNPACK_PROBLEM="it is not a tar archive (gzip, xz or zstd compressed, or plain)"
			rm -rf "${staging}"
			return 1
			;;
	esac

	if ! tar "${tar_args[@]}" 2>"${tar_log}"; then
		TD_UNPACK_PROBLEM="tar could not unpack it: $(head -n 1 "${tar_log}" || true)"
		rm -rf "${staging}" "${tar_log}"
		return 1
	fi
	rm -f "${tar_log}"
	if [[ ! -x "${staging}/bin/python3" ]]; then
		local found
		found="$(cd "${staging}" && find . -maxdepth 2 | LC_ALL=C sort | head -n 8 | tr '\n' ' ')"
		TD_UNPACK_PROBLEM="it has no executable bin/python3 at its top level (found: ${found:-nothing})"
		rm -rf "${staging}"
		return 1
	fi
	rm -rf "${install_dir}"
	mv "${staging}" "${install_dir}"
}

# Names the compression of a file from its first bytes, so a mirror may serve .tar.gz or
# plain .tar as well as heroku/python's .tar.zst.
function python::_compression() {
	local file="${1}"
	local magic
	magic="$(head -c 6 "${file}" | od -An -tx1 | tr -d ' \n')"
	case "${magic}" in
		28b52ffd*) echo "zstd" ;;
		1f8b*) echo "gzip" ;;
		fd377a585a00) echo "xz" ;;
		*)
			if [[ "$(head -c 262 "${file}" | tail -c 5)" == "ustar" ]]; then
				echo "tar"
			else
				echo "unknown"
			fi
			;;
	esac
}

function python::_fail_bad_archive() {
	local url="${1}" problem="${2}"
	output::error <<-EOF
		Error: the Python runtime archive is not usable: ${problem}.

		URL: ${url}

		To fix:
		1. If you set TRAFFIC_DUPLICATOR_PYTHON_URL, point it at an archive with the layout
		   heroku/python uses: bin/python3, lib/ and include/ at the top level.
		2. Otherwise retry the build: the download may have been corrupted.

		Python on each stack: ${TD_DOCS_URL}
	EOF
	exit 1
}

function python::_fail_unusable() {
	local url="${1}" problem="${2}"
	output::error <<-EOF
		Error: the installed Python runtime cannot run traffic-duplicator: ${problem}.

		URL: ${url}

		To fix:
		1. Make sure TRAFFIC_DUPLICATOR_PYTHON_URL (if set) names a CPython ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ archive
		   built for this stack and CPU architecture ($(python::arch)).
		2. Or unset it to use the default: heroku config:unset TRAFFIC_DUPLICATOR_PYTHON_URL

		Python on each stack: ${TD_DOCS_URL}
	EOF
	exit 1
}

# A rebuild that no longer needs our runtime (stack or app Python) must not keep a stale one.
function python::_remove_runtime() {
	local install_dir="${1}"
	rm -rf "${install_dir}" "${install_dir}.partial"
}
