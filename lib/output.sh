#!/usr/bin/env bash
# One output vocabulary for every hook, in Heroku's build-output conventions:
#   "-----> " starts a step, 7 spaces indent its details (stdout);
#   warnings and errors go to stderr, every line prefixed with " !     ".
# An error always reads in the same order: what went wrong, what was found, numbered steps
# to fix it, and a link.

# Redundant for the hooks (they set these), but it tells ShellCheck how these functions run.
set -euo pipefail

# Where the user-facing documentation lives; error messages end with a link into it.
# Kept in one place so a fork or a mirror changes a single line.
# shellcheck disable=SC2034 # Used by the other lib/*.sh files.
TD_DOCS_URL="https://github.com/traffic-duplicator/traffic-duplicator#readme"
TD_INDENT="       "

# Every line the build prints goes through this, as traffic_duplicator/redact.py masks
# what the dyno prints. Written in Bash, not asked of the Python: the first download, the
# Python runtime itself, prints URLs before any Python exists. Two rules:
# - the password of a URL's userinfo (scheme://user:password@host, RFC 3986 section
#   3.2.1) becomes *** (redact.py's pattern);
# - the value of a query parameter whose name holds one of redact.py's credential parts
#   (a presigned URL's X-Amz-Signature, X-Amz-Credential and X-Amz-Security-Token, a
#   token=, an api_key=) becomes ***. Substrings here, not words: a harmless parameter
#   such as monkey= is masked too, which costs a build log nothing.
function output::mask() {
	sed -u -E \
		-e "s#(://[^[:space:]/?\#@:'\"]*:)[^[:space:]/?\#'\"]*@#\\1***@#g" \
		-e "s#([?&][^=&[:space:]'\"\#]*(token|secret|passw|pwd|session|auth|credential|signature|sig|key|jwt)[^=&[:space:]'\"\#]*=)[^&[:space:]'\"\#]+#\\1***#gI"
}

# A step header: `output::step "Installing Python 3.13.15"`.
function output::step() {
	echo "-----> ${1}" | output::mask
}

# One detail line under the current step.
function output::info() {
	echo "${TD_INDENT}${1}" | output::mask
}

# Indent a stream (command output) under the current step: `cmd | output::indent`.
# Lines pass through unbuffered (sed -u in output::mask).
function output::indent() {
	local line
	output::mask | while IFS= read -r line || [[ -n "${line}" ]]; do
		echo "${TD_INDENT}${line}"
	done
}

# Print stdin to stderr with the " !     " prefix, framed by blank lines so it stands out
# in a long build log.
function output::_bang_block() {
	local line
	echo >&2
	output::mask | while IFS= read -r line || [[ -n "${line}" ]]; do
		if [[ -n "${line}" ]]; then
			echo " !     ${line}" >&2
		else
			echo " !" >&2
		fi
	done
	echo >&2
}

# A warning that does not stop the build. Usage:
#   output::warning <<-EOF
#   	Warning: summary.
#   	Details and the fix.
#   EOF
function output::warning() {
	output::_bang_block
}

# An error; the caller exits non-zero after it. Same heredoc usage as output::warning.
function output::error() {
	output::_bang_block
}
