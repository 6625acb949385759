#!/usr/bin/env bash
# Checks of the app that either stop the build (no config/gor.options) or warn about a setup
# that would build fine but not mirror anything (Procfile, em-proxy without Ruby).

set -euo pipefail

TD_LAUNCHER_NAME="start-traffic-duplicator"

# bin/detect and bin/compile agree on what makes an app ours.
function checks::has_options_file() {
	local build_dir="${1}"
	[[ -f "${build_dir}/config/gor.options" ]]
}

# The one line bin/detect prints when the app is not ours.
function checks::missing_options_line() {
	echo "config/gor.options not found: create it with your gor flags, one per line (e.g. '--output-http https://staging.example.com'), commit it and push again."
}

# bin/compile can run without bin/detect (some multi-buildpack tools skip it), so it checks
# too, for the file the wrapper will read (FILE, relative to the app).
function checks::require_options_file() {
	local build_dir="${1}" file="${2}"
	[[ -f "${build_dir}/${file}" ]] && return 0
	local dir="${file%/*}" found
	[[ "${dir}" == "${file}" ]] && dir="."
	if [[ -d "${build_dir}/${dir}" ]]; then
		found="${dir}/ contains: $(cd "${build_dir}/${dir}" && find . -maxdepth 1 -mindepth 1 -printf '%f ' | head -c 200)"
	else
		found="no ${dir}/ directory"
	fi
	output::error <<-EOF
		Error: ${file} not found; it says where to mirror traffic.

		Found: ${found}

		To fix:
		1. Create ${file} with one gor flag per line, for example:
		     --output-http https://staging.example.com
		2. Commit it: git add ${file} && git commit -m "Mirror traffic"
		3. Push again.

		${TD_DOCS_URL}
	EOF
	exit 1
}

# Warns, with the exact line to use, when the web process is not started by the wrapper:
# the buildpack would install everything and mirror nothing.
function checks::procfile() {
	local build_dir="${1}"
	local procfile="${build_dir}/Procfile"
	local line web_command=""

	output::step "Checking the Procfile"
	if [[ ! -f "${procfile}" ]]; then
		output::warning <<-EOF
			Warning: no Procfile, so nothing starts ${TD_LAUNCHER_NAME} and no traffic is mirrored.

			To fix, add a Procfile whose web process starts with it, for example:
			  web: ${TD_LAUNCHER_NAME} bundle exec rails server -p \$PORT
			then commit it and push again.

			Procfile reference: https://devcenter.heroku.com/articles/procfile
		EOF
		return 0
	fi

	while IFS= read -r line || [[ -n "${line}" ]]; do
		line="${line%$'\r'}"
		if [[ "${line}" =~ ^web:[[:space:]]*(.*)$ ]]; then
			web_command="${BASH_REMATCH[1]}"
			break
		fi
	done <"${procfile}"

	if [[ -z "${web_command}" ]]; then
		output::warning <<-EOF
			Warning: the Procfile has no web process, so no traffic is mirrored.

			To fix, add a line like this to the Procfile, then commit and push again:
			  web: ${TD_LAUNCHER_NAME} <the command that starts your web server>

			Procfile reference: https://devcenter.heroku.com/articles/procfile
		EOF
		return 0
	fi

	if checks::_starts_with_launcher "${web_command}"; then
		output::info "web: ${web_command}"
		return 0
	fi

	output::warning <<-EOF
		Warning: the Procfile's web process does not start with ${TD_LAUNCHER_NAME}, so no traffic is mirrored.

		Found:  web: ${web_command}

		To fix, change that line to:
		  web: ${TD_LAUNCHER_NAME} ${web_command}
		then commit and push again.

		${TD_DOCS_URL}
	EOF
}

# True when a command's first word (after an optional `exec`) is the launcher, by name or path.
function checks::_starts_with_launcher() {
	local command="${1}"
	local first rest
	read -r first rest <<<"${command}"
	if [[ "${first}" == "exec" ]]; then
		read -r first rest <<<"${rest}"
	fi
	[[ "${first##*/}" == "${TD_LAUNCHER_NAME}" ]]
}

# em-proxy in Gemfile.lock means the wrapper will run the real em-proxy, which needs Ruby on
# the dyno. A buildpack cannot see the app's buildpack list, so we read what the app tells us
# (.buildpacks, app.json, a BUILDPACK_URL config var) and say plainly when we cannot know.
function checks::em_proxy() {
	local build_dir="${1}" env_dir="${2}" python="${3}"
	local lockfile="${build_dir}/Gemfile.lock"
	[[ -f "${lockfile}" ]] || return 0
	grep -Eq '^[[:space:]]+em-proxy([[:space:]]|\(|$)' "${lockfile}" || return 0

	output::step "Checking for Ruby (em-proxy is in Gemfile.lock)"
	local source verdict
	source="$(checks::_buildpack_list_source "${build_dir}" "${env_dir}" "${python}")"
	verdict="$(checks::_ruby_in_list "${source}" "${build_dir}" "${env_dir}" "${python}")"

	case "${verdict}" in
		yes)
			output::info "${source} lists the Ruby buildpack: em-proxy will have Ruby on the dyno"
			;;
		no)
			output::warning <<-EOF
				Warning: em-proxy is in Gemfile.lock, but ${source} lists no Ruby buildpack.

				em-proxy is a Ruby program: without Ruby on the dyno it cannot run.

				To fix, add the Ruby buildpack after this one in ${source}, e.g. the line:
				  heroku/ruby
				(or remove em-proxy from the Gemfile to use the built-in proxy), then push again.

				Buildpack order: https://devcenter.heroku.com/articles/using-multiple-buildpacks-for-an-app
			EOF
			;;
		*)
			output::warning <<-EOF
				Warning: em-proxy is in Gemfile.lock; it needs Ruby on the dyno.

				A buildpack cannot see the app's buildpack list, so this build cannot tell
				whether the Ruby buildpack runs after this one.

				To make sure:
				1. Run: heroku buildpacks
				2. If heroku/ruby is not listed after this buildpack, run:
				     heroku buildpacks:add heroku/ruby
				3. Or remove em-proxy from the Gemfile to use the built-in proxy.

				Buildpack order: https://devcenter.heroku.com/articles/using-multiple-buildpacks-for-an-app
			EOF
			;;
	esac
}

# Names where the app lists its buildpacks: .buildpacks, app.json, BUILDPACK_URL, or nothing.
function checks::_buildpack_list_source() {
	local build_dir="${1}" env_dir="${2}" python="${3}"
	if [[ -f "${build_dir}/.buildpacks" ]]; then
		echo ".buildpacks"
	elif [[ -f "${build_dir}/app.json" ]] && [[ -n "$(checks::_app_json_buildpacks "${build_dir}" "${python}")" ]]; then
		echo "app.json"
	elif [[ -n "$(utils::env_dir_var "${env_dir}" BUILDPACK_URL)" ]]; then
		echo "BUILDPACK_URL"
	else
		echo "none"
	fi
}

# yes / no / unknown: does the named list include a Ruby buildpack?
# BUILDPACK_URL only ever names one buildpack (or a multi-buildpack runner), so it can say
# yes but never no.
function checks::_ruby_in_list() {
	local source="${1}" build_dir="${2}" env_dir="${3}" python="${4}"
	local entries=""
	case "${source}" in
		.buildpacks) entries="$(grep -Ev '^[[:space:]]*(#|$)' "${build_dir}/.buildpacks" || true)" ;;
		app.json) entries="$(checks::_app_json_buildpacks "${build_dir}" "${python}")" ;;
		BUILDPACK_URL) entries="$(utils::env_dir_var "${env_dir}" BUILDPACK_URL)" ;;
		*)
			echo "unknown"
			return 0
			;;
	esac
	if grep -Eqi '(^|[/:[:space:]])heroku/ruby([#@[:space:]]|$)|heroku-buildpack-ruby' <<<"${entries}"; then
		echo "yes"
	elif [[ "${source}" == "BUILDPACK_URL" ]]; then
		echo "unknown"
	else
		echo "no"
	fi
}

# The buildpack URLs listed in app.json ("buildpacks": [{"url": ...}]), one per line.
function checks::_app_json_buildpacks() {
	local build_dir="${1}" python="${2}"
	LD_LIBRARY_PATH="$(utils::python_lib_dir "${python}")${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" \
		PYTHONDONTWRITEBYTECODE=1 "${python}" - "${build_dir}/app.json" 2>/dev/null <<-'EOF' || true
			import json, sys
			try:
			    with open(sys.argv[1], encoding="utf-8") as f:
			        data = json.load(f)
			    for bp in data.get("buildpacks") or []:
			        if isinstance(bp, dict) and isinstance(bp.get("url"), str):
			            print(bp["url"])
			except (OSError, ValueError, AttributeError):
			    pass
		EOF
}
