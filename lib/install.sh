#!/usr/bin/env bash
# Puts traffic-duplicator into the slug:
#   .traffic-duplicator/lib/traffic_duplicator/       the Python package (standard library only)
#   .traffic-duplicator/bin/start-traffic-duplicator  the launcher (Bash)
#   .profile.d/traffic-duplicator.sh                  puts the launcher on PATH on the dyno
# Everything is replaced on every build, so rebuilds give the same slug.

set -euo pipefail

TD_INSTALL_DIRNAME=".traffic-duplicator"
TD_PROFILE_SCRIPT=".profile.d/traffic-duplicator.sh"
# Where Heroku runs the slug (HOME on a dyno).
TD_APP_DIR="/app"

# Copies the package from the buildpack into the slug, without caches or editor droppings.
function install::package() {
	local buildpack_dir="${1}" build_dir="${2}"
	local lib_dir="${build_dir}/${TD_INSTALL_DIRNAME}/lib"
	local source="${buildpack_dir}/traffic_duplicator"

	if [[ ! -f "${source}/__init__.py" ]]; then
		output::error <<-EOF
			Error: this copy of the traffic-duplicator buildpack has no traffic_duplicator package.

			Looked for: ${source#"${buildpack_dir}/"}/__init__.py

			To fix:
			1. Use the published buildpack URL, or a complete clone of its repository.
			2. Build again.

			${TD_DOCS_URL}
		EOF
		exit 1
	fi

	rm -rf "${lib_dir}"
	mkdir -p "${lib_dir}"
	# tar rather than `cp -r` so caches and partial files can be left out in one pass.
	tar --create --directory "${buildpack_dir}" \
		--exclude='__pycache__' --exclude='*.pyc' --exclude='.*' \
		traffic_duplicator |
		tar --extract --directory "${lib_dir}" --no-same-owner
}

# The package's version, read from its __init__.py without running Python.
function install::package_version() {
	local build_dir="${1}"
	local init="${build_dir}/${TD_INSTALL_DIRNAME}/lib/traffic_duplicator/__init__.py"
	local line
	while IFS= read -r line; do
		if [[ "${line}" =~ ^__version__[[:space:]]*=[[:space:]]*[\"\']([^\"\']+)[\"\'] ]]; then
			echo "${BASH_REMATCH[1]}"
			return 0
		fi
	done <"${init}"
	echo "unknown"
}

function install::launcher() {
	local buildpack_dir="${1}" build_dir="${2}"
	local bin_dir="${build_dir}/${TD_INSTALL_DIRNAME}/bin"
	rm -rf "${bin_dir}"
	mkdir -p "${bin_dir}"
	cp "${buildpack_dir}/bin/start-traffic-duplicator" "${bin_dir}/start-traffic-duplicator"
	chmod 0755 "${bin_dir}/start-traffic-duplicator"
}

# Heroku sources .profile.d/*.sh at dyno start, after config vars are in the environment;
# so every default here yields to a config var of the same name.
function install::profile_script() {
	local build_dir="${1}"
	mkdir -p "${build_dir}/.profile.d"
	cat >"${build_dir}/${TD_PROFILE_SCRIPT}" <<-'EOF'
		# Written by the traffic-duplicator buildpack. Config vars win over these defaults.
		# TRAFFIC_DUPLICATOR_HOME: where the wrapper looks for vendor/gor and its own files.
		export TRAFFIC_DUPLICATOR_HOME="${TRAFFIC_DUPLICATOR_HOME:-${HOME}/.traffic-duplicator}"
		# The launcher itself is always the one this build installed.
		case ":${PATH}:" in
		*":${HOME}/.traffic-duplicator/bin:"*) ;;
		*) export PATH="${HOME}/.traffic-duplicator/bin:${PATH}" ;;
		esac
	EOF
}

# Byte-compiles the package with the interpreter the dyno will use, so the first boot does
# not pay for it. Hash-based .pyc files stay valid whatever mtimes the slug ends up with, and
# -d records the run-time path (/app) rather than the build directory, for tracebacks and for
# identical output from every build.
function install::compile_bytecode() {
	local build_dir="${1}" python="${2}"
	local lib_dir="${build_dir}/${TD_INSTALL_DIRNAME}/lib"
	local python_lib
	python_lib="$(utils::python_lib_dir "${python}")"
	if ! LD_LIBRARY_PATH="${python_lib}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		"${python}" -m compileall -q --invalidation-mode checked-hash \
		-d "${TD_APP_DIR}/${TD_INSTALL_DIRNAME}/lib" "${lib_dir}" >/dev/null 2>&1; then
		# Not fatal: Python compiles on import. Say so, since it hints at a broken package.
		output::info "Note: byte-compiling the package failed; it will compile on first start"
	fi
}
