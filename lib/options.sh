#!/usr/bin/env bash
# Validates config/gor.options at build time with the parser the dyno uses
# (python -m traffic_duplicator.options), so a bad line fails the push, not the dyno.

set -euo pipefail

TD_OPTIONS_FILE="config/gor.options"

# The options file the wrapper will read, relative to the app: TRAFFIC_DUPLICATOR_OPTIONS
# (a config var, relative to the app or under /app) or config/gor.options. Prints nothing
# for a path outside the app, which the build cannot see.
function options::path() {
	local env_dir="${1}"
	local path
	path="$(utils::env_dir_var "${env_dir}" TRAFFIC_DUPLICATOR_OPTIONS)"
	path="${path#"${path%%[![:space:]]*}"}"
	path="${path%"${path##*[![:space:]]}"}"
	if [[ -z "${path}" ]]; then
		echo "${TD_OPTIONS_FILE}"
	elif [[ "${path}" == "${TD_APP_DIR}/"* ]]; then
		echo "${path#"${TD_APP_DIR}/"}"
	elif [[ "${path}" != /* ]]; then
		echo "${path#./}"
	fi
}

# Runs the validator with the build's Python on the package installed in the slug. Prints its
# summary under the step; on a mistake in the file, fails the build with its line and a fix.
function options::validate() {
	local build_dir="${1}" cache_dir="${2}" python="${3}" gor_available="${4}" file="${5}"
	# Where the package is installed: the slug's by default, a layer's in a CNB build.
	local package_lib="${6:-${build_dir}/.traffic-duplicator/lib}"
	local scratch out_file err_file status=0
	scratch="$(utils::scratch_dir "${cache_dir}")"
	out_file="${scratch}/options.out"
	err_file="${scratch}/options.err"

	local args=(-m traffic_duplicator.options "${file}")
	if [[ "${gor_available}" == "yes" ]]; then
		args+=(--gor-available)
	fi

	output::step "Validating ${file}"
	# From BUILD_DIR with a relative path, so messages name config/gor.options, not a tmp dir.
	# No bytecode: the build writes nothing it did not mean to.
	(
		cd "${build_dir}"
		LD_LIBRARY_PATH="$(utils::python_lib_dir "${python}")${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
			PYTHONPATH="${package_lib}" \
			PYTHONDONTWRITEBYTECODE=1 \
			PYTHONNOUSERSITE=1 \
			"${python}" "${args[@]}" >"${out_file}" 2>"${err_file}"
	) || status=$?

	case "${status}" in
		0)
			output::indent <"${out_file}"
			;;
		2)
			options::_fail_user_error "$(head -n 1 "${err_file}")" "${gor_available}" "${file}"
			;;
		*)
			output::error <<-EOF
				Error: checking ${file} crashed (exit status ${status}).

				The validator printed:
				$(tail -n 15 "${err_file}")

				To fix:
				1. Retry the build.
				2. If it fails again, open an issue with this log and your ${file}:
				   ${TD_DOCS_URL}
			EOF
			exit 1
			;;
	esac
	rm -f "${out_file}" "${err_file}"
}

function options::_fail_user_error() {
	local message="${1}" gor_available="${2}" file="${3}"
	local gor_hint="Flags only a real gor has need a gor binary: see vendor/gor/README.md."
	if [[ "${gor_available}" == "yes" ]]; then
		gor_hint="A real gor will replay, so every gor flag is allowed."
	fi
	output::error <<-EOF
		Error: ${file} is not valid; the dyno would refuse to start with it.

		Found: ${message}

		To fix:
		1. Edit the line named above in ${file}. It holds gor flags, for example:
		     --output-http https://staging.example.com
		   Blank lines and lines starting with # are ignored.
		   ${gor_hint}
		2. Commit the change and push again.

		${file} reference: ${TD_DOCS_URL}
	EOF
	exit 1
}
