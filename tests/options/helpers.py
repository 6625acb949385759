"""Helpers for the options tests."""

from __future__ import annotations

import pytest

from traffic_duplicator.options import OptionsError, parse_options, validate_options_file


def error_of(text: str, gor_available: bool = False) -> str:
    with pytest.raises(OptionsError) as info:
        validate_options_file(parse_options(text), gor_available)
    message = str(info.value)
    assert "\n" not in message
    return message


# A corpus of real-world files.
CORPUS = {
    # The buildpack's 2015 README example.
    "heroku-2015": (
        "--output-http 'https://my-downstream-app.herokuapp.com' "
        "--output-http-header 'Host: my-downstream-app.herokuapp.com'\n"
    ),
    # GoReplay's README and wiki examples, options part, as people paste them.
    "goreplay-readme": '--output-http="http://staging.env"\n',
    "rate-limits": "--output-http 'http://staging.com|10'\n--output-http \"http://dev.com|10%\"\n",
    "split": "--output-http http://staging.com --output-http http://dev.com --split-output\n",
    "rewrites": (
        "--output-http http://staging.server\n"
        '--http-set-header "User-Agent: Replayed by Gor"\n'
        '--http-set-header "Enable-Feature-X: true"\n'
        "--http-rewrite-url /v1/user/([^\\\\/]+)/ping:/v2/user/$1/ping\n"
        "--http-set-param api_key=1\n"
        "--http-rewrite-header 'Host: (.*).example.com,$1.beta.example.com'\n"
    ),
    "filters": (
        "--output-http staging.com\n"
        "--http-allow-url ^www. --http-disallow-url ^/admin\n"
        "--http-allow-header api-version:^v1 --http-disallow-header 'User-Agent: Replayed by Gor'\n"
        '--http-basic-auth-filter "^customer[0-9].*"\n'
        "--http-allow-method GET --http-allow-method OPTIONS\n"
        "--http-header-limiter user-id:25% --http-param-limiter user_id:25%\n"
    ),
    "gor-0.x": (
        "# written for gor 0.9\n"
        "-output-http=http://staging.com -output-http-method GET\n"
        "-output-http-url-regexp ^/api -output-http-header-filter 'X-A: b'\n"
        "-output-http-workers 20 -output-http-stats -verbose\n"
    ),
    "tuning": (
        "--output-http https://staging.example.com --output-http-skip-verify\n"
        "--output-http-workers 50 --output-http-timeout 30s --output-http-queue-len 5000\n"
        "--output-http-redirects 2 --stats --output-http-stats --output-http-stats-ms 1000\n"
        "--exit-after 1h30m\n"
    ),
}
