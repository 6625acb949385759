#!/usr/bin/env bash
# Checks of the app that either stop the build (no config/gor.options) or warn about a setup
# that would build fine but not mirror anything (a Procfile that does not start the wrapper).
# Whether em-proxy will have Ruby on the dyno is part of the engine decision, which the
# Python makes (lib/gor.sh, gor::choose_engines).

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
