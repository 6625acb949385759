#!/usr/bin/env bash
# uvloop, the compiled event loop, for the tee proxy and the replayer: the wheel that matches
# the build's Python (CPython version) and CPU, from the Python package index, unpacked into
#   .traffic-duplicator/lib/uvloop-wheel/uvloop/
# beside the package and not on PYTHONPATH, which the app inherits: an app with its own
# uvloop keeps it (traffic_duplicator/loops.py adds the directory for our engines only).
#
# Optional by design: TRAFFIC_DUPLICATOR_UVLOOP=off (false, 0, no) skips it, and whatever
# fails (no wheel for this Python or CPU, a download error, a checksum mismatch, a wheel
# that does not import) leaves the engines on asyncio, says so in one build line, and never
# fails the build. The wheel is cached in CACHE_DIR.

set -euo pipefail

# The one place the version is pinned, with the sha256 of every wheel we may fetch, as
# PyPI's index lists them: "PATH-UNDER-packages/ SHA256" per "cpXY-CPU". Only CPython
# 3.10-3.14 on glibc (manylinux_2_17: every Heroku stack), x86_64 and aarch64.
TD_UVLOOP_VERSION="0.23.0"
TD_UVLOOP_BASE_URL="https://files.pythonhosted.org/packages"
declare -A TD_UVLOOP_WHEELS=(
	[cp310-aarch64]="bc/44/a4b7bea44d55c882e23fc858eebed9e157486650cdbecdb951577e89362f/uvloop-0.23.0-cp310-cp310-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl 42feced24b9b44b856c633eafb5cc5dec354972da55ce77598db6844c054bc7c"
	[cp310-x86_64]="76/4a/488d9ee6eb87899273d84ebeaf7023c551ff8f8d44f7e7c0f78d06b6da25/uvloop-0.23.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 9bf08e4b6362dd1c08623bbfa2d061e8bac0f1da8fc2007062cfe1dc360a49fa"
	[cp311-aarch64]="25/0d/b5f69dae3736d96a8753c6ecd32d676ecd212be7ba3252e9c379ad9cc05c/uvloop-0.23.0-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl 8fcd721113260ffb5e38bf14a8725b17d431f34209f7d1c7005b667946e630b3"
	[cp311-x86_64]="16/fd/8cbf6124607863399008ae4b0d2bb50c22ed83526deec28dca08d635eb6d/uvloop-0.23.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl ab17b3a8aa754be0de0e397f7b95f13b14e56f077a4c6ae295e3d4afd199b325"
	[cp312-aarch64]="3d/95/a880f8ce3b87ac5b307c354e8ee480be4658d24bf01f87921d57e3530b4a/uvloop-0.23.0-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl f7548ede3ee908cfabc0d068106e303a9a2d811af959cdf6ab85676344cedcda"
	[cp312-x86_64]="51/27/c1d2f9fa977f8f42ea294604166df10e0027e6dc6cd17f85ede386c9bf36/uvloop-0.23.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 090865d8ce7a03986755a3ce711b7dd0d4b44eb14ab74368b717f3fad1180208"
	[cp313-aarch64]="0b/1d/cde53c79e8c01884ad1cdca8e407e086d523362cfe4139e2c2a8dde27304/uvloop-0.23.0-cp313-cp313-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl 1748321e3c59a14a75404b1ae8d5a8d81c4e201803ea0e14c1b6fd84421024b5"
	[cp313-x86_64]="98/54/b12915bebbf99d7ae0796211e7f5977b95f069830dca45dc1a346d84125d/uvloop-0.23.0-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl e2cba180d6451822763eda8364f342435a873bcfb3849cbd82fdeca248ca65eb"
	[cp314-aarch64]="9e/79/9ddf78f8cd75a15c14a09a57f59c587b8cd9d82802c5c8368b9c3ebefa0b/uvloop-0.23.0-cp314-cp314-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl 6b3cbc4f96ddfa1fb88a78a69dd851369825b7816d9702eee8c4461505ba172e"
	[cp314-x86_64]="1e/20/57d63c44d32326878fcad5c63854afc9deb394ed95673c1b1a429178c79d/uvloop-0.23.0-cp314-cp314-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 31e0cf90bc8fd88784f6802cdba968a51fb1aec1cc3feec74d862b2d371d1330"
)
TD_UVLOOP_DIRNAME="uvloop-wheel"
# Asks the interpreter what it is: "cpython 313 x86_64 glibc" (a free-threaded build adds
# t to the version, and has no wheel pinned).
TD_UVLOOP_PROBE='import platform, sys, sysconfig
t = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
print(sys.implementation.name, "%d%d%s" % (sys.version_info[0], sys.version_info[1], t),
      platform.machine().lower().replace("arm64", "aarch64"), platform.libc_ver()[0] or "none")'

# Set by the helpers when they fail: why the engines stay on asyncio.
TD_UVLOOP_PROBLEM=""
# Set by uvloop::choice: uvloop or asyncio.
TD_UVLOOP_CHOICE=""

# "PATH SHA256" of the pinned wheel for a "cpXY-CPU" key; fails when there is none.
function uvloop::wheel_for() {
	local key="${1}"
	[[ -n "${TD_UVLOOP_WHEELS[${key}]+set}" ]] || return 1
	echo "${TD_UVLOOP_WHEELS[${key}]}"
}

# Installs uvloop into the slug, or leaves the engines on asyncio; one line either way.
# Fails the build only when TRAFFIC_DUPLICATOR_UVLOOP is not a switch (uvloop::choice):
# nothing else about uvloop ever does.
# Usage: uvloop::install BUILD_DIR CACHE_DIR ENV_DIR PYTHON
function uvloop::install() {
	local build_dir="${1}" cache_dir="${2}" env_dir="${3}" python="${4}"
	local target="${build_dir}/.traffic-duplicator/lib/${TD_UVLOOP_DIRNAME}"
	local switch how
	rm -rf "${target}" "${target}.partial"
	# A config var, or (self-hosted builders, tests) the build's own environment.
	switch="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_UVLOOP)"
	if [[ -z "${switch//[[:space:]]/}" ]]; then
		switch="${TRAFFIC_DUPLICATOR_UVLOOP:-}"
	fi
	uvloop::choice "${build_dir}" "${python}" "${switch}"
	if [[ "${TD_UVLOOP_CHOICE}" == "asyncio" ]]; then
		output::info "Event loop: asyncio (TRAFFIC_DUPLICATOR_UVLOOP=$(tr -d '[:space:]' <<<"${switch}"), uvloop not installed)"
		return 0
	fi
	if how="$(uvloop::_install "${target}" "${cache_dir}" "${env_dir}" "${python}")"; then
		output::info "Event loop: uvloop ${TD_UVLOOP_VERSION} (${how})"
	else
		rm -rf "${target}" "${target}.partial"
		output::info "Event loop: asyncio; uvloop ${TD_UVLOOP_VERSION} not installed: ${how}"
	fi
	return 0
}

# Sets TD_UVLOOP_CHOICE to the loop the engines will ask for with SWITCH as
# TRAFFIC_DUPLICATOR_UVLOOP, "uvloop" or "asyncio", as the package in the slug decides it
# (python -m traffic_duplicator.loops): the build reads the switch as the dyno does. A word
# that is not a switch fails the build with the line the wrapper would print.
# Usage: uvloop::choice BUILD_DIR PYTHON SWITCH
function uvloop::choice() {
	local build_dir="${1}" python="${2}" switch="${3}"
	local choice status=0
	choice="$(LD_LIBRARY_PATH="$(utils::python_lib_dir "${python}")${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONPATH="${build_dir}/.traffic-duplicator/lib" PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 \
		TRAFFIC_DUPLICATOR_UVLOOP="${switch}" \
		"${python}" -m traffic_duplicator.loops --build-choice 2>&1)" || status=$?
	if [[ "${status}" == 0 ]]; then
		TD_UVLOOP_CHOICE="${choice}"
		return 0
	fi
	if [[ "${status}" == 2 ]]; then
		output::error <<<"Error: the dyno would refuse to start: ${choice}"
	else
		# Not the user's mistake: what it printed, and where to report it.
		output::error <<<"Error: reading TRAFFIC_DUPLICATOR_UVLOOP crashed (exit status ${status}):
$(tail -n 15 <<<"${choice}")

Retry the build; if it fails again, open an issue with this log: ${TD_DOCS_URL}"
	fi
	exit 1
}

# Prints how it went ("cp313 x86_64, downloaded"), or the problem and fails.
function uvloop::_install() {
	local target="${1}" cache_dir="${2}" env_dir="${3}" python="${4}"
	local lib_dir facts impl version cpu libc key wheel path sha file base url origin
	lib_dir="$(utils::python_lib_dir "${python}")"
	if ! facts="$(LD_LIBRARY_PATH="${lib_dir}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONDONTWRITEBYTECODE=1 "${python}" -c "${TD_UVLOOP_PROBE}" 2>/dev/null)"; then
		echo "the build's Python did not run"
		return 1
	fi
	read -r impl version cpu libc <<<"${facts}"
	key="cp${version}-${cpu}"
	if [[ "${impl}" != "cpython" || "${libc}" != "glibc" ]] || ! wheel="$(uvloop::wheel_for "${key}")"; then
		echo "no wheel for ${impl} ${version:0:1}.${version:1} on ${cpu} (${libc}); the pinned wheels cover CPython 3.10-3.14 on x86_64 and aarch64 with glibc"
		return 1
	fi
	read -r path sha <<<"${wheel}"
	file="${cache_dir}/traffic-duplicator/uvloop/${path##*/}"
	base="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_UVLOOP_URL | tr -d '[:space:]')"
	base="${base:-${TRAFFIC_DUPLICATOR_UVLOOP_URL:-${TD_UVLOOP_BASE_URL}}}"
	url="${base%/}/${path}"
	origin="from the build cache"
	if ! utils::sha256_matches "${file}" "${sha}"; then
		origin="downloaded"
		if ! uvloop::_download "${url}" "${file}" "${sha}" "${cache_dir}"; then
			echo "${TD_UVLOOP_PROBLEM}"
			return 1
		fi
	fi
	if ! uvloop::_unpack "${file}" "${target}" "${python}"; then
		rm -f "${file}"
		echo "${TD_UVLOOP_PROBLEM}"
		return 1
	fi
	echo "cp${version}, ${cpu}; ${origin}"
}

# Downloads URL into the cache as FILE, keeping only this wheel there, if its checksum
# is the pinned one (utils::download_verified).
function uvloop::_download() {
	local url="${1}" file="${2}" sha="${3}" cache_dir="${4}" status=0
	rm -rf "${file%/*}"
	mkdir -p "${file%/*}"
	utils::download_verified "${url}" "${file}" "${sha}" "${cache_dir}" || status=$?
	case "${status}" in
		0) return 0 ;;
		2) TD_UVLOOP_PROBLEM="checksum mismatch for ${url} (expected sha256 ${sha})" ;;
		*) TD_UVLOOP_PROBLEM="the download failed (${TD_DOWNLOAD_SAID:-${TD_DOWNLOAD_PROBLEM}}) from ${url}" ;;
	esac
	return 1
}

# Unpacks the wheel (a zip) with the build's Python, keeps what runs (not the Cython
# sources), and checks that uvloop imports and makes a loop with that very Python.
function uvloop::_unpack() {
	local file="${1}" target="${2}" python="${3}"
	local staging="${target}.partial" lib_dir
	lib_dir="$(utils::python_lib_dir "${python}")"
	rm -rf "${staging}"
	mkdir -p "${staging}"
	if ! LD_LIBRARY_PATH="${lib_dir}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" PYTHONDONTWRITEBYTECODE=1 \
		"${python}" -m zipfile -e "${file}" "${staging}" >/dev/null 2>&1; then
		TD_UVLOOP_PROBLEM="the wheel is not a readable zip archive"
		return 1
	fi
	find "${staging}" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.h' \) -delete
	if ! (cd "${staging}" && LD_LIBRARY_PATH="${lib_dir}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 PYTHONPATH="${staging}" \
		"${python}" -c 'import uvloop; uvloop.new_event_loop().close()' >/dev/null 2>&1); then
		TD_UVLOOP_PROBLEM="the unpacked wheel does not import with the build's Python"
		return 1
	fi
	mv "${staging}" "${target}"
}
