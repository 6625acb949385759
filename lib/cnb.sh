#!/usr/bin/env bash
# The Cloud Native Buildpack side of the repository (Buildpack API 0.10: Heroku Fir, pack,
# kpack). One launch layer, <layers>/traffic-duplicator, laid out like the classic slug's
# .traffic-duplicator/ so the same launcher runs from it:
#   bin/start-traffic-duplicator   on PATH at launch (the lifecycle adds every launch layer's bin/)
#   lib/traffic_duplicator/        the package
#   python/                        a CPython runtime, only when no earlier buildpack of the
#                                  group left one in a launch layer (heroku/python does, for
#                                  Python apps only)
#   vendor/gor/gor                 the buildpack's gor when it carries one, or GoReplay's
#                                  release when TRAFFIC_DUPLICATOR_GOR_VERSION asks for it
#   engines.checked                the engine decision the build checked (gor::choose_engines)
#   env.launch/                    TRAFFIC_DUPLICATOR_HOME, as a default config vars override
# The layer is cached; its metadata names the runtime archive, so a rebuild with the same
# one downloads and unpacks nothing. A second layer, <layers>/gor-cache, is cached and
# never launched: it keeps GoReplay's release archive, named by its sha256, between builds.
# Spec: https://github.com/buildpacks/spec/blob/buildpack/v0.10/buildpack.md

set -euo pipefail

# The layer's name: <layers>/traffic-duplicator/ and <layers>/traffic-duplicator.toml.
TD_CNB_LAYER="traffic-duplicator"
# The cache layer gor::install_release keeps GoReplay's archive in (its CACHE_DIR).
TD_CNB_GOR_CACHE="gor-cache"

# Set by cnb::read_cached_metadata: what the restored layer holds (empty on a first build).
TD_CNB_CACHED_PYTHON_URL=""
# Set by cnb::select_python: the runtime archive and version in the layer, empty when the
# group's Python is used instead.
TD_CNB_PYTHON_URL=""
TD_CNB_PYTHON_VERSION=""

# Detection for the CNB lifecycle: the app is ours when the options file the wrapper will read
# exists. Exits 0 (pass) or 100 (fail), as Buildpack API 0.10 asks. Writes no build plan:
# this buildpack neither provides nor requires anything from the others.
function cnb::detect() {
	local env_dir="${1}" app_dir="${2}"
	local file
	file="$(options::path "${env_dir}")"
	if [[ -z "${file}" ]]; then
		# The config var names a file outside the app: the user asked for us explicitly, and
		# the build says it cannot check that file.
		echo "Traffic Duplicator (TRAFFIC_DUPLICATOR_OPTIONS points outside the app)"
		exit 0
	fi
	if [[ -f "${app_dir}/${file}" ]]; then
		echo "Traffic Duplicator (${file})"
		exit 0
	fi
	if [[ "${file}" == "${TD_OPTIONS_FILE}" ]]; then
		checks::missing_options_line >&2
	else
		echo "${file} (named by TRAFFIC_DUPLICATOR_OPTIONS) not found: create it with your gor flags, commit it and push again." >&2
	fi
	exit 100
}

# Describes the target the lifecycle builds for (CNB_TARGET_*), e.g. "ubuntu 24.04 amd64".
function cnb::target() {
	echo "${CNB_TARGET_DISTRO_NAME:-unknown} ${CNB_TARGET_DISTRO_VERSION:-unknown} $(cnb::arch)"
}

# The target's architecture, as Debian names it (amd64, arm64): CNB_TARGET_ARCH, which the
# lifecycle sets from the run image, else this machine's.
function cnb::arch() {
	echo "${CNB_TARGET_ARCH:-$(python::arch)}"
}

# The Heroku stack whose Python archives fit the target (heroku-22 for Ubuntu 22.04, …): the
# classic build names its runtime archives by stack. Empty for a target that is not Ubuntu.
function cnb::stack() {
	if [[ "${CNB_TARGET_DISTRO_NAME:-}" == "ubuntu" && "${CNB_TARGET_DISTRO_VERSION:-}" =~ ^([0-9]+)\.04$ ]]; then
		echo "heroku-${BASH_REMATCH[1]}"
	fi
}

# Reads the restored layer metadata (the lifecycle restores <layer>.toml without its [types]
# table before the build). Sets TD_CNB_CACHED_PYTHON_URL.
function cnb::read_cached_metadata() {
	local layers_dir="${1}"
	TD_CNB_CACHED_PYTHON_URL="$(cnb::_metadata_value "${layers_dir}/${TD_CNB_LAYER}.toml" python_url)"
}

# Chooses the Python that runs the wrapper at launch and that the build uses to check the
# options. Sets TD_BUILD_PYTHON and TD_PYTHON_DESCRIPTION (as python::select does for the
# classic build), TD_CNB_PYTHON_URL and TD_CNB_PYTHON_VERSION.
function cnb::select_python() {
	local layers_dir="${1}" scratch_dir="${2}" env_dir="${3}"
	local install_dir="${layers_dir}/${TD_CNB_LAYER}/python"
	local group_python version url stack what
	output::step "Choosing the Python for traffic-duplicator (target: $(cnb::target))"

	# 1. An earlier buildpack's launch layer (heroku/python for a Python app): the launcher
	#    finds it on PATH at launch, so nothing is installed.
	if group_python="$(cnb::group_python "${layers_dir}")"; then
		python::_remove_runtime "${install_dir}"
		version="$(utils::python_version "${group_python}")"
		TD_BUILD_PYTHON="${group_python}"
		TD_PYTHON_DESCRIPTION="the group's Python ${version} (${group_python#"${layers_dir%/*}/"})"
		TD_CNB_PYTHON_URL=""
		TD_CNB_PYTHON_VERSION=""
		output::info "Using ${TD_PYTHON_DESCRIPTION}; no download needed"
		return 0
	fi

	# 2. Our own runtime, from the archives the classic build uses.
	# TD_PYTHON_URL_ORIGIN and STACK pick the fixes lib/python.sh's download errors suggest.
	url="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_PYTHON_URL | tr -d '[:space:]')"
	if [[ -n "${url}" ]]; then
		TD_PYTHON_URL_ORIGIN="override"
		what="the Python runtime from TRAFFIC_DUPLICATOR_PYTHON_URL"
	else
		# shellcheck disable=SC2034 # Read by lib/python.sh.
		TD_PYTHON_URL_ORIGIN="default"
		stack="$(cnb::stack)"
		cnb::_require_runtime_archive "${stack}"
		url="$(python::default_url "${stack}")"
		# shellcheck disable=SC2034 # Read by lib/python.sh.
		STACK="${stack}"
		what="Python ${TD_PYTHON_VERSION} (heroku/python's runtime archive)"
	fi
	output::info "No earlier buildpack provides a Python ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ at launch; this layer gets one"

	TD_BUILD_PYTHON="${install_dir}/bin/python3"
	# The layer's metadata ends up in the image's labels: it records the URL masked.
	local recorded
	recorded="$(printf '%s\n' "${url}" | output::mask)"
	if [[ "${recorded}" == "${TD_CNB_CACHED_PYTHON_URL}" ]] && version="$(utils::python_version "${TD_BUILD_PYTHON}")" &&
		utils::version_at_least "${version}" "${TD_PYTHON_MIN_MAJOR}" "${TD_PYTHON_MIN_MINOR}"; then
		output::info "Using the cached Python ${version} (the layer already holds ${url##*/})"
	else
		output::info "Installing ${what}"
		python::install_runtime "${install_dir}" "${scratch_dir}" "${url}"
		python::check_runtime "${TD_BUILD_PYTHON}" "${url}"
		version="${TD_RUNTIME_VERSION}"
		output::info "Installed Python ${version}"
	fi
	TD_CNB_PYTHON_URL="${recorded}"
	TD_CNB_PYTHON_VERSION="${version}"
	TD_PYTHON_DESCRIPTION="Python ${version} (the ${TD_CNB_LAYER} layer)"
}

# heroku/python publishes no runtime for Ubuntu 22.04 on arm64: say so before a download that
# can only fail. A target that is not Ubuntu gets the Ubuntu 24.04 build, with a warning, as
# an unknown stack does in the classic build.
function cnb::_require_runtime_archive() {
	local stack="${1}"
	if [[ -z "${stack}" ]]; then
		output::warning <<-EOF
			Warning: unknown target '$(cnb::target)'; using the Ubuntu 24.04 Python build.

			If Python fails to start, set TRAFFIC_DUPLICATOR_PYTHON_URL to a runtime archive
			built for your target, or list heroku/python before this buildpack.
		EOF
		return 0
	fi
	if [[ "${stack}" != "heroku-22" || "$(cnb::arch)" != "arm64" ]]; then
		return 0
	fi
	output::error <<-EOF
		Error: no Python runtime archive exists for this target ($(cnb::target)).

		No earlier buildpack in the group provides a Python ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ at launch, and
		heroku/python publishes no Ubuntu 22.04 runtime for arm64.

		To fix, one of:
		1. Build on an Ubuntu 24.04 or 26.04 base, e.g. the builder heroku/builder:24.
		2. List heroku/python before this buildpack in project.toml.
		3. Set TRAFFIC_DUPLICATOR_PYTHON_URL to a CPython ${TD_PYTHON_MIN_MAJOR}.${TD_PYTHON_MIN_MINOR}+ runtime archive for this target.

		${TD_DOCS_URL}
	EOF
	exit 1
}

# Prints the first python3 on PATH (3.10+) that an earlier buildpack of the group put in the
# bin/ of a launch layer, so that it is on PATH at launch too. A python3 from the build image
# (/usr/bin) does not count: the run image may have none. Fails when there is no such Python.
function cnb::group_python() {
	local layers_dir="${1}"
	local root="${layers_dir%/*}"
	local dir candidate real version
	local path_dirs=()
	IFS=: read -r -a path_dirs <<<"${PATH:-}"
	for dir in "${path_dirs[@]}"; do
		candidate="${dir:-.}/python3"
		[[ -x "${candidate}" ]] || continue
		real="$(readlink -f "${candidate}")" || continue
		[[ "${real}" == "${root}/"* && "${real}" != "${layers_dir}/"* ]] || continue
		cnb::_in_launch_layer_bin "${root}" "${real}" || continue
		version="$(utils::python_version "${candidate}")" || continue
		utils::version_at_least "${version}" "${TD_PYTHON_MIN_MAJOR}" "${TD_PYTHON_MIN_MINOR}" || continue
		echo "${candidate}"
		return 0
	done
	return 1
}

# True when FILE is <root>/<buildpack>/<layer>/bin/… and <layer>.toml says launch = true.
function cnb::_in_launch_layer_bin() {
	local root="${1}" file="${2}"
	local buildpack layer rest
	IFS=/ read -r buildpack layer rest <<<"${file#"${root}/"}"
	[[ -n "${buildpack}" && -n "${layer}" && "${rest}" == bin/* ]] || return 1
	[[ "$(cnb::_layer_type "${root}/${buildpack}/${layer}.toml" launch)" == "true" ]]
}

# Prints the value of KEY in the [types] table of a layer TOML file (true, false or nothing),
# as libcnb and the lifecycle write it: one `key = value` line per key.
function cnb::_layer_type() {
	local toml="${1}" key="${2}"
	[[ -f "${toml}" ]] || return 0
	awk -v key="${key}" '
		/^[[:space:]]*\[/ { in_types = ($0 ~ /^[[:space:]]*\[types\][[:space:]]*$/); next }
		in_types {
			line = $0
			sub(/#.*/, "", line)
			if (line ~ "^[[:space:]]*" key "[[:space:]]*=") {
				sub(/^[^=]*=[[:space:]]*/, "", line)
				sub(/[[:space:]]*$/, "", line)
				print line
				exit
			}
		}
	' "${toml}"
}

# Prints a string value this buildpack wrote under [metadata] (`key = "value"`), or nothing.
function cnb::_metadata_value() {
	local toml="${1}" key="${2}"
	[[ -f "${toml}" ]] || return 0
	local line value
	while IFS= read -r line; do
		if [[ "${line}" =~ ^${key}[[:space:]]*=[[:space:]]*\"(.*)\"[[:space:]]*$ ]]; then
			value="${BASH_REMATCH[1]}"
			value="${value//\\\"/\"}"
			echo "${value//\\\\/\\}"
			return 0
		fi
	done <"${toml}"
}

# A TOML basic string holding VALUE.
function cnb::_toml_string() {
	local value="${1}"
	value="${value//\\/\\\\}"
	echo "\"${value//\"/\\\"}\""
}

# The launch environment: the lifecycle puts the layer's bin/ on PATH by itself; the wrapper
# also gets TRAFFIC_DUPLICATOR_HOME as a default (a config var of that name wins), like the
# classic .profile.d script gives it.
function cnb::write_launch_env() {
	local layers_dir="${1}"
	local layer="${layers_dir}/${TD_CNB_LAYER}"
	rm -rf "${layer}/env.launch"
	mkdir -p "${layer}/env.launch"
	printf '%s' "${layer}" >"${layer}/env.launch/TRAFFIC_DUPLICATOR_HOME.default"
}

# <layers>/traffic-duplicator.toml: a launch layer, kept in the cache so the next build can
# reuse its runtime; the metadata says which runtime archive it holds.
function cnb::write_layer_metadata() {
	local layers_dir="${1}" package_version="${2}"
	cnb::_write_layer_toml "${layers_dir}/${TD_CNB_LAYER}.toml" true <<-EOF
		package_version = $(cnb::_toml_string "${package_version}")
		python_url = $(cnb::_toml_string "${TD_CNB_PYTHON_URL}")
		python_version = $(cnb::_toml_string "${TD_CNB_PYTHON_VERSION}")
		target = $(cnb::_toml_string "$(cnb::target)")
	EOF
}

# <layers>/gor-cache.toml: keeps the gor-cache layer (GoReplay's archive, which
# gor::install_release leaves in traffic-duplicator/gor-archives/<sha256>.tar.gz) for the
# next build while TRAFFIC_DUPLICATOR_GOR_VERSION or _URL asks for gor; a cache layer only,
# never in the image. Without either, the layer is dropped.
function cnb::keep_gor_cache() {
	local layers_dir="${1}" env_dir="${2}"
	local cache="${layers_dir}/${TD_CNB_GOR_CACHE}" archive="" asked path
	rm -rf "${cache}/traffic-duplicator/tmp"
	asked="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_GOR_VERSION)"
	asked+="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_GOR_URL)"
	if [[ -n "${asked//[[:space:]]/}" ]]; then
		for path in "${cache}"/traffic-duplicator/gor-archives/*.tar.gz; do
			[[ -f "${path}" ]] && archive="${path}"
		done
	fi
	if [[ -z "${archive}" ]]; then
		rm -rf "${cache}" "${cache}.toml"
		return 0
	fi
	local sha256="${archive##*/}"
	cnb::_write_layer_toml "${cache}.toml" false <<-EOF
		gor_archive_sha256 = $(cnb::_toml_string "${sha256%.tar.gz}")
	EOF
}

# Writes a layer's TOML FILE: cached, not for the build, `launch = LAUNCH` (true or false),
# with the [metadata] lines read from stdin.
function cnb::_write_layer_toml() {
	local file="${1}" launch="${2}"
	{
		printf '[types]\nlaunch = %s\nbuild = false\ncache = true\n\n[metadata]\n' "${launch}"
		cat
	} >"${file}"
}
