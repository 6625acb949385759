"""GoReplay options: the one parser for `config/gor.options` and for the replayer's argv.

The package, one job per module:

- `words`: shell-like splitting of the file into words that remember their line;
- `values`, `urls`, `rules`: one parser per kind of flag value (durations, sizes, limits,
  output URLs, headers, rewrites), shared with the replayer and the tee proxy;
- `re2`, `charclass`, `goregex`: Go's RE2 syntax and `ReplaceAll`, as the replayer runs them;
- `flags`: the typed flag table;
- `model`: the flags found in some words, with typed access to their values;
- `validation`: the rules a file must follow, each written once;
- `summary` and `cli`: what `bin/compile` prints (`python -m traffic_duplicator.options`).

Flags are checked against one table of GoReplay names (1.3 plus the older names still
found in users' files); each value is checked by the same function the replayer later uses
to build its configuration, so a file that passes at build time cannot fail at run time.
"""

from __future__ import annotations

from traffic_duplicator.options.errors import BadValue, OptionsError
from traffic_duplicator.options.flags import (
    ALIASES,
    BY_NAME,
    FLAGS,
    Flag,
    Kind,
    Scope,
    TypedFlag,
)
from traffic_duplicator.options.goregex import GoRegex, compile_go_regex, go_replace_all
from traffic_duplicator.options.model import (
    DEFAULT_SOURCE,
    GorOptions,
    ParsedFlag,
    load_options,
    parse_argv,
    parse_options,
)
from traffic_duplicator.options.rules import (
    HashLimit,
    HeaderRegex,
    HeaderRewrite,
    HeaderValue,
    UrlRewrite,
    decode_basic_auth,
    parse_hash_limit,
    parse_header_regex,
    parse_header_rewrite,
    parse_header_value,
    parse_method,
    parse_param,
    parse_regex,
    parse_url_rewrite,
)
from traffic_duplicator.options.summary import deprecation_notices, summary
from traffic_duplicator.options.urls import OutputTarget, parse_output_http
from traffic_duplicator.options.validation import (
    OUTPUT_FLAGS,
    REAL_GOR_FIX,
    require_builtin,
    require_output,
    validate_options_file,
)
from traffic_duplicator.options.values import (
    MAX_PERCENT,
    InputFile,
    Limit,
    LimitKind,
    Listen,
    parse_count,
    parse_duration,
    parse_input_file,
    parse_limit,
    parse_listen,
    parse_size,
    parse_text,
    parse_verbose,
)
from traffic_duplicator.options.words import Word, split_words

__all__ = [
    "ALIASES",
    "BY_NAME",
    "DEFAULT_SOURCE",
    "FLAGS",
    "MAX_PERCENT",
    "OUTPUT_FLAGS",
    "REAL_GOR_FIX",
    "BadValue",
    "Flag",
    "GoRegex",
    "GorOptions",
    "HashLimit",
    "HeaderRegex",
    "HeaderRewrite",
    "HeaderValue",
    "InputFile",
    "Kind",
    "Limit",
    "LimitKind",
    "Listen",
    "OptionsError",
    "OutputTarget",
    "ParsedFlag",
    "Scope",
    "TypedFlag",
    "UrlRewrite",
    "Word",
    "compile_go_regex",
    "decode_basic_auth",
    "deprecation_notices",
    "go_replace_all",
    "load_options",
    "parse_argv",
    "parse_count",
    "parse_duration",
    "parse_hash_limit",
    "parse_header_regex",
    "parse_header_rewrite",
    "parse_header_value",
    "parse_input_file",
    "parse_limit",
    "parse_listen",
    "parse_method",
    "parse_options",
    "parse_output_http",
    "parse_param",
    "parse_regex",
    "parse_size",
    "parse_text",
    "parse_url_rewrite",
    "parse_verbose",
    "require_builtin",
    "require_output",
    "split_words",
    "summary",
    "validate_options_file",
]
