#!/usr/bin/env bash
# gor in the slug, and the engine decision asked of the Python the dyno runs.
#
# What is truly build-time lives here: putting a gor binary where the wrapper looks for it
# (the buildpack's vendor/gor/gor copied to the app's bin/gor, or GoReplay's release
# downloaded into .traffic-duplicator/vendor/gor/gor when TRAFFIC_DUPLICATOR_GOR_VERSION
# asks for it; a Cloud Native Buildpack's layer stands in for .traffic-duplicator/, and
# for bin/gor too, as that build leaves the app as it is). Which replayer, proxy and hop
# the dyno will use, and whether it would start at all, is decided by
# traffic_duplicator.wrapper.engines, the code the dyno runs: this file only runs it
# (`--explain`) and reads back its record.

set -euo pipefail

TD_GOR_MARKER=".traffic-duplicator/gor-from-buildpack.sha256"
# The engine decision this build checked; the wrapper reads it at boot (wrapper/buildrecord.py).
TD_ENGINES_RECORD=".traffic-duplicator/engines.checked"

# GoReplay's official Linux release archives, by version and Debian architecture:
#   VERSION ARCH URL SHA256
# The archive names and tags come from GoReplay's own release recipe (buger/goreplay Makefile
# `release-x64`: `tar -czf gor_$(VERSION)_x64.tar.gz gor`, and its release Dockerfile, which
# downloads releases/download/${TAG}/gor_${TAG}_x64.tar.gz); 1.3.3 is tagged without a "v".
# GoReplay 1.x publishes no Linux arm64 archive (the Makefile builds x64, x86, mac and
# windows only), so no arm64 line exists. No public source we could find states the sha256
# of gor_1.3.3_x64.tar.gz, and we never write down a checksum we have not seen published:
# "-" means none is pinned, and the build asks for TRAFFIC_DUPLICATOR_GOR_SHA256 (taken from a
# copy you trust). Add a line here only with a checksum and where it was published.
TD_GOR_RELEASES=(
	"1.3.3 amd64 https://github.com/buger/goreplay/releases/download/1.3.3/gor_1.3.3_x64.tar.gz -"
)

# Set by gor::choose_engines from the decision's record.
TD_GOR_AVAILABLE="no"
TD_GOR_DESCRIPTION="the built-in replayer (python -m traffic_duplicator.replay)"

# gor::select BUILDPACK_DIR BUILD_DIR CACHE_DIR ENV_DIR [HOME] [ARCH]
#
# Puts the buildpack's vendor/gor/gor into the slug as bin/gor when the app has none, or the
# GoReplay release TRAFFIC_DUPLICATOR_GOR_VERSION names into HOME/vendor/gor (the archive
# cached in CACHE_DIR). The app's own bin/gor always wins: then nothing is copied or downloaded.
# A marker remembers which bin/gor we copied, so a rebuild in the same directory can tell
# our copy from the app's and replace or remove it.
# The classic build passes the first four: HOME is BUILD_DIR/.traffic-duplicator and ARCH
# this machine's. A Cloud Native Buildpack passes its launch layer as HOME and
# CNB_TARGET_ARCH as ARCH; it writes nothing in the app, so the buildpack's gor goes to
# HOME/vendor/gor/gor too (where the wrapper looks after the app's bin/gor).
function gor::select() {
	local buildpack_dir="${1}" build_dir="${2}" cache_dir="${3}" env_dir="${4}"
	local home="${5:-}" arch="${6:-}"
	local slug_gor="${build_dir}/bin/gor"
	local vendor_gor="${buildpack_dir}/vendor/gor/gor"
	local marker="${build_dir}/${TD_GOR_MARKER}"
	local vendor_dir="${home:-${build_dir}/.traffic-duplicator}/vendor/gor"
	local version url sha256
	version="$(gor::_config "${env_dir}" TRAFFIC_DUPLICATOR_GOR_VERSION)"
	url="$(gor::_config "${env_dir}" TRAFFIC_DUPLICATOR_GOR_URL)"
	sha256="$(gor::_config "${env_dir}" TRAFFIC_DUPLICATOR_GOR_SHA256)"

	output::step "Looking for a gor binary"

	if [[ -z "${home}" ]]; then
		# A bin/gor that is byte-for-byte what we copied last time is ours, not the app's.
		if [[ -f "${slug_gor}" && -f "${marker}" ]] &&
			[[ "$(utils::sha256 "${slug_gor}")" == "$(cat "${marker}")" ]]; then
			rm -f "${slug_gor}"
		fi
		rm -f "${marker}"
	fi
	rm -rf "${vendor_dir}"

	if [[ -e "${slug_gor}" ]]; then
		output::info "Keeping the app's bin/gor"
		if [[ -n "${version}${url}" ]]; then
			output::info "The app's bin/gor wins over TRAFFIC_DUPLICATOR_GOR_VERSION: nothing is downloaded"
		elif [[ -f "${vendor_gor}" ]]; then
			output::info "Keeping the app's bin/gor; the buildpack's vendor/gor/gor is not used"
		fi
	elif [[ -n "${version}${url}" ]]; then
		gor::install_release "${vendor_dir}" "${cache_dir}" \
			"${version}" "${arch:-$(python::arch)}" "${url}" "${sha256}"
	elif [[ -f "${vendor_gor}" ]]; then
		# The slug gets it as bin/gor, marked as ours; a CNB's layer as its vendor/gor/gor.
		local dest="${slug_gor}" shown="bin/gor"
		if [[ -n "${home}" ]]; then
			dest="${vendor_dir}/gor" shown="the layer's vendor/gor/gor"
		fi
		mkdir -p "${dest%/*}"
		cp "${vendor_gor}" "${dest}"
		chmod 0755 "${dest}"
		if [[ -z "${home}" ]]; then
			utils::sha256 "${slug_gor}" >"${marker}"
		fi
		output::info "Copied the buildpack's vendor/gor/gor to ${shown}"
	else
		output::info "No gor binary in the app (bin/gor) or the buildpack (vendor/gor/gor)"
		output::info "Set TRAFFIC_DUPLICATOR_GOR_VERSION to have the build download GoReplay"
	fi
}

# gor::choose_engines APP_DIR ENV_DIR PYTHON [LIB_DIR] [HOME] [RUN_APP_DIR]
#
# Runs the engine decision the dyno will make (python -m traffic_duplicator.wrapper.engines
# --explain) with the build's Python on the package installed for the app. It prints its
# own steps and, where the dyno would refuse to start, one error line: the push then fails.
# Sets TD_GOR_AVAILABLE (yes | no, for options::validate) and TD_GOR_DESCRIPTION, and leaves
# the decision in HOME/engines.checked for the wrapper.
# The classic build passes only the first three: the package is in
# APP_DIR/.traffic-duplicator/lib, HOME is APP_DIR/.traffic-duplicator and the app runs
# from /app. A Cloud Native Buildpack passes its layer's lib/, the layer itself as HOME, and
# its app directory as RUN_APP_DIR (the lifecycle launches the app where it was built).
function gor::choose_engines() {
	local app_dir="${1}" env_dir="${2}" python="${3}"
	local lib_dir="${4:-${1}/.traffic-duplicator/lib}" home="${5:-}" run_app_dir="${6:-/app}"
	local record="${home:-${app_dir}/.traffic-duplicator}/${TD_ENGINES_RECORD##*/}" status=0
	local args=(--explain "${app_dir}" "${env_dir}" --record "${record}" --app-dir "${run_app_dir}")
	if [[ -n "${home}" ]]; then
		args+=(--home "${home}")
	fi
	rm -f "${record}"
	LD_LIBRARY_PATH="$(utils::python_lib_dir "${python}")${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONPATH="${lib_dir}" \
		PYTHONDONTWRITEBYTECODE=1 \
		PYTHONNOUSERSITE=1 \
		"${python}" -m traffic_duplicator.wrapper.engines "${args[@]}" || status=$?
	case "${status}" in
		0) ;;
		2) exit 1 ;; # the error line is printed: the dyno would refuse to start
		*)
			output::error <<-EOF
				Error: choosing the engines crashed (exit status ${status}).

				To fix:
				1. Retry the build.
				2. If it fails again, open an issue with this log: ${TD_DOCS_URL}
			EOF
			exit 1
			;;
	esac
	if [[ "$(sed -n 's/^uses_gor=//p' "${record}")" == "yes" ]]; then
		TD_GOR_AVAILABLE="yes"
	fi
	# shellcheck disable=SC2034 # bin/compile prints it in its summary.
	TD_GOR_DESCRIPTION="$(sed -n 's/^summary=//p' "${record}")"
}

# yes or no, as options::validate takes it.
function gor::available() {
	echo "${TD_GOR_AVAILABLE}"
}

# gor::install_release DEST_DIR CACHE_DIR VERSION ARCH [URL] [SHA256]
#
# Installs GoReplay's `gor` as DEST_DIR/gor (mode 0755) from its official Linux release
# archive for VERSION (e.g. 1.3.3) and ARCH (Debian's name: amd64, arm64), checked against
# the sha256 pinned in TD_GOR_RELEASES. URL and SHA256, when not empty, replace the pinned
# ones (a mirror, or a test server); with both given, VERSION only names the release in
# messages. The archive is cached in CACHE_DIR/traffic-duplicator/gor-archives by checksum,
# so a later build with the same checksum downloads nothing. Every failure (unknown version,
# no build for ARCH, download failed, checksum mismatch, no gor in the archive) prints its
# own error and exits 1: the user asked for gor explicitly.
# The classic build passes BUILD_DIR/.traffic-duplicator/vendor/gor; a Cloud Native
# Buildpack's bin/build passes its launch layer's vendor/gor (the layer being
# TRAFFIC_DUPLICATOR_HOME), and CNB_TARGET_ARCH as ARCH. Callers source lib/output.sh,
# lib/utils.sh first (messages, scratch space, downloads).
function gor::install_release() {
	local dest_dir="${1}" cache_dir="${2}" version="${3}" arch="${4}" url="${5:-}" sha256="${6:-}"
	local line pinned_url="" pinned_sha="" known_version="no"
	for line in "${TD_GOR_RELEASES[@]}"; do
		local r_version r_arch r_url r_sha
		read -r r_version r_arch r_url r_sha <<<"${line}"
		[[ "${r_version}" == "${version}" ]] || continue
		known_version="yes"
		if [[ "${r_arch}" == "${arch}" ]]; then
			pinned_url="${r_url}"
			[[ "${r_sha}" != "-" ]] && pinned_sha="${r_sha}"
		fi
	done
	if [[ -z "${url}" ]]; then
		[[ "${known_version}" == "yes" ]] || gor::_fail_unknown_version "${version}"
		[[ -n "${pinned_url}" ]] || gor::_fail_no_build "${version}" "${arch}"
		url="${pinned_url}"
	fi
	sha256="$(tr '[:upper:]' '[:lower:]' <<<"${sha256:-${pinned_sha}}")"
	if [[ ! "${sha256}" =~ ^[0-9a-f]{64}$ ]]; then
		gor::_fail_no_checksum "${version}" "${arch}" "${url}" "${sha256}"
	fi

	local archive_dir="${cache_dir}/traffic-duplicator/gor-archives"
	local archive="${archive_dir}/${sha256}.tar.gz"
	mkdir -p "${archive_dir}"
	if utils::sha256_matches "${archive}" "${sha256}"; then
		output::info "Using the cached GoReplay ${version:-release} archive (${url##*/})"
	else
		output::info "Downloading GoReplay ${version:-release} for ${arch}: ${url}"
		gor::_download "${url}" "${archive}" "${sha256}" "${cache_dir}"
	fi
	gor::_prune_archives "${archive_dir}" "${sha256}"
	gor::_unpack "${archive}" "${dest_dir}" "${url}"
	output::info "Installed gor ${version:-from ${url##*/}} (sha256 ${sha256:0:16}...)"
}

# A config var from ENV_DIR, trimmed.
function gor::_config() {
	utils::env_dir_var "${1}" "${2}" | tr -d '[:space:]'
}

# Puts URL into the cache as DEST when its sha256 is SHA256 (utils::download_verified:
# only a checked archive takes the cache's name); a failed download or a checksum mismatch
# prints its error and exits 1.
function gor::_download() {
	local url="${1}" dest="${2}" sha256="${3}" cache_dir="${4}" status=0
	utils::download_verified "${url}" "${dest}" "${sha256}" "${cache_dir}" || status=$?
	case "${status}" in
		0) return 0 ;;
		2) gor::_fail_checksum "${url}" "${sha256}" "${TD_DOWNLOAD_SHA256}" ;;
	esac
	local problem="${TD_DOWNLOAD_PROBLEM}" curl_said="${TD_DOWNLOAD_SAID}"
	output::error <<-EOF
		Error: could not download GoReplay: ${problem}.

		URL: ${url}
		curl said: ${curl_said:-nothing}

		To fix:
		1. Retry the build: most download failures are temporary.
		2. If your builds cannot reach that host, copy the archive to one they can reach and set
		   TRAFFIC_DUPLICATOR_GOR_URL to the copy (and TRAFFIC_DUPLICATOR_GOR_SHA256 to its checksum).

		gor in the build: ${TD_DOCS_URL}
	EOF
	exit 1
}

# Keeps only the archive in use, so the cache does not grow with every version.
function gor::_prune_archives() {
	local archive_dir="${1}" keep="${2}"
	local path
	for path in "${archive_dir}"/*; do
		[[ -e "${path}" ]] || continue
		[[ "${path##*/}" == "${keep}.tar.gz" ]] || rm -rf "${path}"
	done
}

# GoReplay's archives hold the binary alone, `gor`, at their top level.
function gor::_unpack() {
	local archive="${1}" dest_dir="${2}" url="${3}"
	local staging="${dest_dir}.partial"
	rm -rf "${staging}"
	mkdir -p "${staging}"
	if ! tar --extract --gzip --file "${archive}" --directory "${staging}" --no-same-owner 2>/dev/null ||
		[[ ! -f "${staging}/gor" ]]; then
		rm -rf "${staging}"
		output::error <<-EOF
			Error: the GoReplay archive has no gor binary at its top level.

			URL: ${url}

			To fix:
			1. Point TRAFFIC_DUPLICATOR_GOR_URL at a GoReplay Linux release archive
			   (a .tar.gz holding the gor binary), or unset it to use the official one.
			2. Push again.

			gor in the build: ${TD_DOCS_URL}
		EOF
		exit 1
	fi
	chmod 0755 "${staging}/gor"
	rm -rf "${dest_dir}"
	mkdir -p "${dest_dir%/*}"
	mv "${staging}" "${dest_dir}"
}

function gor::_known_versions() {
	local line versions=()
	for line in "${TD_GOR_RELEASES[@]}"; do
		versions+=("${line%% *}")
	done
	printf '%s\n' "${versions[@]}" | sort -u | tr '\n' ' '
}

function gor::_fail_unknown_version() {
	local version="${1}"
	output::error <<-EOF
		Error: TRAFFIC_DUPLICATOR_GOR_VERSION=${version} is not a GoReplay version this buildpack knows.

		Known versions: $(gor::_known_versions)

		To fix:
		1. Set a known version: heroku config:set TRAFFIC_DUPLICATOR_GOR_VERSION=1.3.3
		2. Or name the archive yourself with TRAFFIC_DUPLICATOR_GOR_URL and TRAFFIC_DUPLICATOR_GOR_SHA256.
		3. Push again.

		gor in the build: ${TD_DOCS_URL}
	EOF
	exit 1
}

function gor::_fail_no_build() {
	local version="${1}" arch="${2}"
	output::error <<-EOF
		Error: GoReplay ${version} has no Linux build for this architecture (${arch}).

		GoReplay 1.x publishes Linux archives for amd64 only.

		To fix:
		1. Build gor for ${arch} yourself, serve the archive (a .tar.gz holding gor) where the build can
		   reach it, and set TRAFFIC_DUPLICATOR_GOR_URL and TRAFFIC_DUPLICATOR_GOR_SHA256.
		2. Or commit a ${arch} gor as bin/gor, or unset TRAFFIC_DUPLICATOR_GOR_VERSION to use the
		   built-in replayer.
		3. Push again.

		gor in the build: ${TD_DOCS_URL}
	EOF
	exit 1
}

function gor::_fail_no_checksum() {
	local version="${1}" arch="${2}" url="${3}" given="${4}"
	local problem="no sha256 is pinned for GoReplay ${version} (${arch}) in this buildpack"
	if [[ -n "${given}" ]]; then
		problem="TRAFFIC_DUPLICATOR_GOR_SHA256 is not a sha256 (64 hexadecimal digits)"
	fi
	output::error <<-EOF
		Error: cannot check the GoReplay download: ${problem}.

		URL: ${url}

		To fix:
		1. Set TRAFFIC_DUPLICATOR_GOR_SHA256 to the archive's sha256, taken from a copy you trust:
		     sha256sum ${url##*/}
		2. Push again.

		gor in the build: ${TD_DOCS_URL}
	EOF
	exit 1
}

function gor::_fail_checksum() {
	local url="${1}" expected="${2}" actual="${3}"
	output::error <<-EOF
		Error: checksum mismatch for the GoReplay download: expected sha256 ${expected}, got ${actual}.

		URL: ${url}

		The file was not installed. A changed archive may have been tampered with.

		To fix:
		1. If you set TRAFFIC_DUPLICATOR_GOR_SHA256 or TRAFFIC_DUPLICATOR_GOR_URL, check that they name
		   the same archive.
		2. Otherwise retry the build: the download may have been corrupted.

		gor in the build: ${TD_DOCS_URL}
	EOF
	exit 1
}
