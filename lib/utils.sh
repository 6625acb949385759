#!/usr/bin/env bash
# Small helpers shared by the hooks: the ERR trap that explains unexpected failures,
# scratch space inside CACHE_DIR, downloads, and version checks of a Python interpreter.

set -euo pipefail

# Installs an ERR trap on the calling shell (and, via errtrace, its functions) that turns an
# unexpected failure into an explanation: the failing command, its status, file, line and
# function. Expected failures are handled where they happen and `exit 1` after their own
# message, which does not fire this trap.
function utils::install_err_trap() {
	set -o errtrace
	trap 'utils::_on_err "$?" "${BASH_COMMAND}" "${BASH_SOURCE[0]:-?}" "${LINENO}" "${FUNCNAME[0]:-main}"' ERR
}

function utils::_on_err() {
	local status="${1}" command="${2}" file="${3}" line="${4}" function_name="${5}"
	# Report once, from the top-level shell: a failure inside $(...) also fails the command
	# that contains it, which is the line the user can act on.
	if ((BASH_SUBSHELL > 0)); then
		return
	fi
	trap - ERR
	output::error <<-EOF
		Error: the traffic-duplicator buildpack failed unexpectedly.

		This command exited with status ${status}:
		  ${command}
		at ${file#"${BUILDPACK_DIR:-}/"}:${line} (in ${function_name}).

		To fix:
		1. Retry the build: a network or disk hiccup is the usual cause.
		2. If it fails again, open an issue with this build log:
		   ${TD_DOCS_URL}
	EOF
	exit 1
}

# Scratch files for one build live under CACHE_DIR, never in /tmp: a buildpack must not
# write outside BUILD_DIR and CACHE_DIR. `utils::scratch_dir CACHE_DIR` prints the directory.
function utils::scratch_dir() {
	local cache_dir="${1}"
	local dir="${cache_dir}/traffic-duplicator/tmp"
	mkdir -p "${dir}"
	echo "${dir}"
}

# curl limits for every download (the Python runtime ~10 MB, GoReplay, the uvloop wheel);
# the generous max-time suits slow build networks. TRAFFIC_DUPLICATOR_CURL_* (process
# environment only, not config vars) exist so the tests and self-hosted builders can
# shorten them.
TD_CURL_CONNECT_TIMEOUT="${TRAFFIC_DUPLICATOR_CURL_CONNECT_TIMEOUT:-10}"
TD_CURL_MAX_TIME="${TRAFFIC_DUPLICATOR_CURL_MAX_TIME:-120}"
TD_CURL_RETRIES="${TRAFFIC_DUPLICATOR_CURL_RETRIES:-3}"

# Set by utils::download when it fails: curl's exit status, the HTTP status, curl's first
# line of complaint, the kind of failure (utils::_describe_failure, utils::_not_written) and
# the failure in words.
# Set by utils::download_verified: the sha256 of what arrived.
# shellcheck disable=SC2034 # Read by the callers (lib/python.sh, lib/gor.sh, lib/uvloop.sh).
TD_DOWNLOAD_STATUS=0
TD_DOWNLOAD_HTTP_CODE=""
TD_DOWNLOAD_SAID=""
TD_DOWNLOAD_KIND=""
TD_DOWNLOAD_PROBLEM=""
TD_DOWNLOAD_SHA256=""

# utils::download URL DEST CACHE_DIR
#
# Downloads URL to DEST through DEST.partial, so an interrupted download is never left as
# DEST (or cached). Retries, time limits and redirects are the same for every download.
# On failure: returns 1 with TD_DOWNLOAD_* set, and leaves no partial file behind; the
# caller words the error for its own artifact.
function utils::download() {
	local url="${1}" dest="${2}" cache_dir="${3}"
	local partial="${dest}.partial" error_log
	error_log="$(utils::scratch_dir "${cache_dir}")/curl-error.log"
	TD_DOWNLOAD_STATUS=0
	TD_DOWNLOAD_SAID="" TD_DOWNLOAD_KIND="" TD_DOWNLOAD_PROBLEM=""
	rm -f "${partial}"
	TD_DOWNLOAD_HTTP_CODE="$(
		curl --fail --silent --show-error --location \
			--retry "${TD_CURL_RETRIES}" --retry-connrefused --retry-max-time "${TD_CURL_MAX_TIME}" \
			--connect-timeout "${TD_CURL_CONNECT_TIMEOUT}" --max-time "${TD_CURL_MAX_TIME}" \
			--output "${partial}" --write-out '%{http_code}' "${url}" 2>"${error_log}"
	)" || TD_DOWNLOAD_STATUS=$?
	if ((TD_DOWNLOAD_STATUS == 0)); then
		rm -f "${error_log}"
		mv -f "${partial}" "${dest}" && return 0
		utils::_not_written "${dest}"
		rm -f "${partial}"
		return 1
	fi
	# shellcheck disable=SC2034 # Read by the callers.
	TD_DOWNLOAD_SAID="$(head -n 1 "${error_log}" 2>/dev/null || true)"
	utils::_describe_failure "${TD_DOWNLOAD_STATUS}" "${TD_DOWNLOAD_HTTP_CODE}"
	rm -f "${partial}" "${error_log}"
	return 1
}

# utils::_describe_failure CURL_STATUS HTTP_CODE sets TD_DOWNLOAD_KIND (dns, unreachable,
# timeout, http, tls, url or other) and TD_DOWNLOAD_PROBLEM, what went wrong in words. The
# one place curl's exit statuses are grouped (man curl "EXIT CODES"): callers that give a
# fix per failure choose it by kind.
function utils::_describe_failure() {
	local status="${1}" http_code="${2}"
	# shellcheck disable=SC2034 # Read by the callers.
	case "${status}" in
		5 | 6) TD_DOWNLOAD_KIND="dns" TD_DOWNLOAD_PROBLEM="the host name could not be resolved (DNS)" ;;
		7) TD_DOWNLOAD_KIND="unreachable" TD_DOWNLOAD_PROBLEM="the server could not be reached (connection refused or no route)" ;;
		28) TD_DOWNLOAD_KIND="timeout" TD_DOWNLOAD_PROBLEM="the download timed out (connect limit ${TD_CURL_CONNECT_TIMEOUT}s, total limit ${TD_CURL_MAX_TIME}s)" ;;
		22) TD_DOWNLOAD_KIND="http" TD_DOWNLOAD_PROBLEM="the server answered HTTP ${http_code}" ;;
		35 | 51 | 53 | 54 | 58 | 59 | 60 | 64 | 66 | 77 | 80 | 82 | 83 | 90 | 91)
			TD_DOWNLOAD_KIND="tls" TD_DOWNLOAD_PROBLEM="the TLS connection failed (certificate or handshake)"
			;;
		1 | 3) TD_DOWNLOAD_KIND="url" TD_DOWNLOAD_PROBLEM="curl cannot use this URL" ;;
		*) TD_DOWNLOAD_KIND="other" TD_DOWNLOAD_PROBLEM="curl failed with exit status ${status}" ;;
	esac
}

# utils::_not_written FILE: the download arrived but FILE could not be written or read
# (a full or read-only disk). Callers run the download functions in an `if` or after `||`,
# where Bash ignores `set -e`, so this failure is reported like a download's.
# shellcheck disable=SC2034 # Read by the callers.
function utils::_not_written() {
	TD_DOWNLOAD_KIND="disk" TD_DOWNLOAD_SAID=""
	TD_DOWNLOAD_PROBLEM="the build could not write ${1} (is the disk full?)"
}

# utils::download_verified URL DEST SHA256 CACHE_DIR
#
# Downloads URL (utils::download) to DEST.unverified and gives it DEST's name only when its
# sha256 is SHA256, so a cache named by checksum never holds a file that was not checked.
# Returns 0; 1 when the download failed or could not be written (TD_DOWNLOAD_* as
# utils::download sets them); 2 on a checksum mismatch, with TD_DOWNLOAD_SHA256 the sha256
# of what arrived. Leaves no temporary file behind either way.
function utils::download_verified() {
	local url="${1}" dest="${2}" sha256="${3}" cache_dir="${4}"
	local unverified="${dest}.unverified"
	TD_DOWNLOAD_SHA256=""
	utils::download "${url}" "${unverified}" "${cache_dir}" || return 1
	TD_DOWNLOAD_SHA256="$(utils::sha256 "${unverified}")"
	if [[ ! "${TD_DOWNLOAD_SHA256}" =~ ^[0-9a-f]{64}$ ]]; then
		utils::_not_written "${unverified}"
		rm -f "${unverified}"
		return 1
	fi
	if [[ "${TD_DOWNLOAD_SHA256}" != "${sha256}" ]]; then
		rm -f "${unverified}"
		return 2
	fi
	mv -f "${unverified}" "${dest}" && return 0
	utils::_not_written "${dest}"
	rm -f "${unverified}"
	return 1
}

# utils::sha256 [FILE]: the sha256 of FILE, or of stdin without one, as 64 lowercase
# hexadecimal digits.
function utils::sha256() {
	sha256sum "$@" | cut -d ' ' -f 1
}

# True when FILE exists, is not empty and has the sha256 SHA256: a cached download that is
# still good. Usage: utils::sha256_matches FILE SHA256
function utils::sha256_matches() {
	local file="${1}" sha256="${2}"
	[[ -s "${file}" && "$(utils::sha256 "${file}")" == "${sha256}" ]]
}

# Prints "3.13.15" for a working interpreter, or fails. Runs it with its own lib/ on
# LD_LIBRARY_PATH: Heroku's runtime archives are shared builds (libpython in lib/).
function utils::python_version() {
	local python="${1}"
	local lib_dir
	lib_dir="$(utils::python_lib_dir "${python}")"
	[[ -x "${python}" ]] || return 1
	LD_LIBRARY_PATH="${lib_dir}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONDONTWRITEBYTECODE=1 \
		"${python}" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# The lib/ directory next to an interpreter's bin/ (where libpython lives in a shared build).
function utils::python_lib_dir() {
	local python="${1}"
	local bin_dir="${python%/*}"
	echo "${bin_dir%/*}/lib"
}

# True when VERSION (e.g. 3.10.4) is at least MAJOR.MINOR.
function utils::version_at_least() {
	local version="${1}" want_major="${2}" want_minor="${3}"
	local major minor
	IFS=. read -r major minor _ <<<"${version}"
	[[ "${major}" =~ ^[0-9]+$ && "${minor}" =~ ^[0-9]+$ ]] || return 1
	((major > want_major || (major == want_major && minor >= want_minor)))
}

# Reads one config var from ENV_DIR (Heroku writes one file per var there); prints nothing
# when it is not set.
function utils::env_dir_var() {
	local env_dir="${1}" name="${2}"
	if [[ -n "${env_dir}" && -f "${env_dir}/${name}" ]]; then
		cat "${env_dir}/${name}"
	fi
}
