"""Every bad config is one located line per problem and exit 2, before anything runs.

Each case changes one thing in a valid config (or writes a hostile file) and states
the exact line ``crmpulse check-config`` must print. None of them may end as a
traceback or an "internal error", and each value that would break a run later (a
zero interval, an infinite rate, a missing CA file, an alias bomb) is refused here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crmpulse.app.cli import main
from tests.badservers import make_certificate

BASE = """\
target:
  name: shop
  base_url: http://127.0.0.1:8085
  timeout: 5s
  auth: {type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${env:T_SECRET}"}
  tls: {verify: true}
  safety: {allow_loadtest: true, max_users: 10, max_rps: 50}
slos:
  - {name: availability, kind: availability, objective: 99.9, window: 30d}
probes:
  listen: 127.0.0.1:9687
  concurrency: 16
  checks:
    - {name: api_read, kind: http, operation: list_accounts, interval: 30s, timeout: 5s, jitter: 10}
    - name: journey
      kind: journey
      steps:
        - {operation: search_contacts, with: {q: smith}, save: {contact_id: first_id}}
        - {operation: get_contact, with: {id: "{{ contact_id }}"}}
  sync:
    - name: search
      mode: canary
      interval: 1m
      sla: 30s
      poll_min: 25ms
      create: {operation: create_contact, with: {first_name: A, last_name: B, email: "{{ marker }}-{{ canary }}@x.example"}}
      read: {operation: search_contacts, with: {email: "{{ email }}"}, found: "$.data[0].id"}
      sweep: {operation: list_contacts, with: {tag: "{{ marker }}"}}
loadtest:
  metrics_listen: 127.0.0.1:9688
  shape: {kind: ramp, users: 5, duration: 1m, spawn_rate: 1, multiple: 2}
"""

NINES = "9" * 400
SYNC = BASE[BASE.index("  sync:\n"):BASE.index("\nloadtest:") + 1]
WEBHOOK = """  sync:
    - name: hook
      mode: webhook
      create: {operation: create_contact, with: {first_name: A, last_name: B, email: x@x.example}}
      webhook:
        subscribe: {operation: register_webhook, with: {url: "{{ url }}"}}
        signature: %s
      sweep: {operation: list_contacts}
"""

# id -> (text to replace in BASE, its replacement, the exact problem line); {f} is the config
# file, {d} its folder. Files a case needs are written by write_fixtures().
CASES: dict[str, tuple[str, str, str]] = {
    # a framing header set by hand would frame each body twice (an invalid request)
    "target-headers-transfer-encoding": ("  timeout: 5s\n", "  timeout: 5s\n  headers: {Transfer-Encoding: chunked}\n",
                                         "{f}:5 target.headers: Transfer-Encoding is not a header to set: "
                                         "crmpulse frames each body itself (a second framing would make the "
                                         "request invalid); remove it"),
    # durations: zero where a loop divides by it, infinity, past a year, negative
    "check-interval-0s": ("interval: 30s", "interval: 0s",
                          '{f}:14 probes.checks[0].interval: expected a duration above 0, got "0s"'),
    "check-interval-400-nines": ("interval: 30s", f"interval: {NINES}s",
                                 '{f}:14 probes.checks[0].interval: expected a duration up to 365d, got '
                                 '"9999999999999999999999999999999999999..."'),
    "check-interval-past-a-year": ("interval: 30s", "interval: 400d",
                                   '{f}:14 probes.checks[0].interval: expected a duration up to 365d, got "400d"'),
    "check-interval-negative": ("interval: 30s", "interval: -5s",
                                '{f}:14 probes.checks[0].interval: expected a duration like "30s", got "-5s"'),
    "check-interval-inf-number": ("interval: 30s", "interval: .inf",
                                  '{f}:14 probes.checks[0].interval: expected a duration like "30s", got inf (float)'),
    "check-timeout-0ms": ("timeout: 5s, jitter", "timeout: 0ms, jitter",
                          '{f}:14 probes.checks[0].timeout: expected a duration above 0, got "0ms"'),
    "target-timeout-0s": ("  timeout: 5s\n", "  timeout: 0s\n",
                          '{f}:4 target.timeout: expected a duration above 0, got "0s"'),
    "sync-interval-0s": ("interval: 1m", "interval: 0s",
                         '{f}:23 probes.sync[0].interval: expected a duration above 0, got "0s"'),
    "sync-sla-0s": ("sla: 30s", "sla: 0s", '{f}:24 probes.sync[0].sla: expected a duration above 0, got "0s"'),
    "sync-poll-min-0s": ("poll_min: 25ms", "poll_min: 0s",
                         '{f}:25 probes.sync[0].poll_min: expected a duration above 0, got "0s"'),
    "slo-window-0d": ("window: 30d", "window: 0d",
                      '{f}:9 slos[0].window: expected a duration above 0, got "0d"'),
    "shape-duration-0s": ("duration: 1m", "duration: 0s",
                          '{f}:31 loadtest.shape.duration: expected a duration above 0, got "0s"'),
    # numbers: infinite, not a number, out of range
    "max-rps-inf": ("max_rps: 50", "max_rps: .inf",
                    "{f}:7 target.safety.max_rps: expected a finite number, got inf"),
    "max-rps-nan": ("max_rps: 50", "max_rps: .nan",
                    "{f}:7 target.safety.max_rps: expected a finite number, got nan"),
    "max-rps-zero": ("max_rps: 50", "max_rps: 0",
                     "{f}:7 target.safety.max_rps: input should be greater than 0, got 0"),
    "max-users-zero": ("max_users: 10", "max_users: 0",
                       "{f}:7 target.safety.max_users: input should be greater than or equal to 1, got 0"),
    "spawn-rate-inf": ("spawn_rate: 1", "spawn_rate: .inf",
                       "{f}:31 loadtest.shape.spawn_rate: expected a finite number, got inf"),
    "multiple-nan": ("multiple: 2", "multiple: .nan",
                     "{f}:31 loadtest.shape.multiple: expected a finite number, got nan"),
    "concurrency-5000": ("concurrency: 16", "concurrency: 5000",
                         "{f}:12 probes.concurrency: input should be less than or equal to 1024, got 5000"),
    "jitter-150": ("jitter: 10", "jitter: 150",
                   "{f}:14 probes.checks[0].jitter: expected a percentage above 0 and below 100, got 150"),
    "objective-100": ("objective: 99.9", "objective: 100",
                      "{f}:9 slos[0].objective: expected a percentage above 0 and below 100, got 100"),
    # URLs, ports and listen addresses
    "base-url-port-99999": ("8085", "99999",
                            '{f}:3 target.base_url: expected an http(s) URL like "https://crm.example.com", '
                            'got "http://127.0.0.1:99999" (its port must be 1-65535)'),
    "base-url-port-0": ("127.0.0.1:8085", "127.0.0.1:0",
                        '{f}:3 target.base_url: expected an http(s) URL like "https://crm.example.com", '
                        'got "http://127.0.0.1:0" (its port must be 1-65535)'),
    "base-url-broken-ipv6": ("http://127.0.0.1:8085", "http://[::1",
                             '{f}:3 target.base_url: expected an http(s) URL like "https://crm.example.com", '
                             'got "http://[::1" (Invalid IPv6 URL)'),
    "base-url-ftp": ("http://127.0.0.1:8085", "ftp://127.0.0.1",
                     '{f}:3 target.base_url: expected an http(s) URL like "https://crm.example.com", '
                     'got "ftp://127.0.0.1"'),
    "base-url-literal-password": ("http://127.0.0.1:8085", "http://rep:hunter2@127.0.0.1:8085",
                                  "{f}:3 target.base_url: expected the password in the URL as a reference, "
                                  "like http://user:${{env:CRM_PASSWORD}}@host: secrets are never written in "
                                  "the file, which ends up in git and in tickets"),
    "base-url-credentials-and-auth": ("http://127.0.0.1:8085", "http://rep:${env:T_SECRET}@127.0.0.1:8085",
                                      "{f}:3 target.base_url: the URL carries credentials and target.auth is "
                                      "set too: give them in one place"),
    "listen-not-an-address": ("listen: 127.0.0.1:9687", "listen: not-a-listen-address",
                              '{f}:11 probes.listen: expected host:port like "127.0.0.1:9687", '
                              'got "not-a-listen-address"'),
    "listen-port-70000": ("listen: 127.0.0.1:9687", "listen: 127.0.0.1:70000",
                          '{f}:11 probes.listen: expected host:port like "127.0.0.1:9687", got "127.0.0.1:70000"'),
    "listen-broken-ipv6": ("listen: 127.0.0.1:9687", 'listen: "[::1:9687"',
                           '{f}:11 probes.listen: expected host:port like "127.0.0.1:9687", got "[::1:9687"'),
    "metrics-listen-words": ("metrics_listen: 127.0.0.1:9688", "metrics_listen: somewhere",
                             '{f}:30 loadtest.metrics_listen: expected host:port like "127.0.0.1:9687", '
                             'got "somewhere"'),
    "probe-hosts-bare-host": ("  concurrency: 16\n", "  concurrency: 16\n  probe_hosts: [127.0.0.1]\n",
                              '{f}:13 probes.probe_hosts[0]: expected an origin like "https://crm-eu.example.com" '
                              'or "http://10.0.0.5:8080" (credentials go to an exact scheme, host and port), '
                              'got "127.0.0.1"'),
    "probe-hosts-with-path": ("  concurrency: 16\n", "  concurrency: 16\n  probe_hosts: [http://a.example/x]\n",
                              '{f}:13 probes.probe_hosts[0]: expected an origin like "https://crm-eu.example.com" '
                              'or "http://10.0.0.5:8080" (credentials go to an exact scheme, host and port), '
                              'got "http://a.example/x"'),
    "token-url-broken": ("client_id: crmpulse,", 'client_id: crmpulse, token_url: "http://[::1/token",',
                         '{f}:5 target.auth.token_url: expected an absolute http(s) URL or a path, '
                         'got "http://[::1/token"'),
    "tls-check-port-70000": ("    - name: journey\n", "    - {name: cert, kind: tls, host: crm.example.com, "
                             "port: 70000}\n    - name: journey\n",
                             "{f}:15 probes.checks[1].port: input should be less than or equal to 65535, got 70000"),
    "tls-check-on-plain-http": ("    - name: journey\n", "    - {name: cert, kind: tls}\n    - name: journey\n",
                                "{f}:15 probes.checks[1].kind: a tls check needs TLS: target.base_url is "
                                "http://, so give this check a host (and port) that serves TLS"),
    # templates: syntax, and variables the caller does not give
    "template-unclosed": ('with: {q: smith}', 'with: {q: "{{ template"}',
                          '{f}:18 probes.checks[1].steps[0].with.q: expected placeholders like "{{{{ name }}}}", '
                          '"{{{{ name? }}}}" or "{{{{ name or \'text\' | map }}}}" (docs/profiles.md, Templates), got "{{{{ template"'),
    "template-bad-name": ('with: {q: smith}', 'with: {q: "{{ first-name }}"}',
                          '{f}:18 probes.checks[1].steps[0].with.q: expected placeholders like "{{{{ name }}}}", '
                          '"{{{{ name? }}}}" or "{{{{ name or \'text\' | map }}}}" (docs/profiles.md, Templates), got "{{{{ first-name }}}}"'),
    "template-unknown-saved-value": ('{{ contact_id }}', '{{ contact_idd }}',
                                     '{f}:19 probes.checks[1].steps[1].with.id: unknown template variable '
                                     '"contact_idd" (did you mean "contact_id"?)'),
    "template-operation-needs-a-variable": ("operation: list_accounts,", "operation: get_contact,",
                                            '{f}:14 probes.checks[0].with: operation get_contact needs "id", '
                                            "which this check does not give: add it under with"),
    "template-in-a-check-with": ("operation: list_accounts,", 'operation: list_accounts, with: {x: "{{ now }}"},',
                                 "{f}:14 probes.checks[0].with.x: this check passes its with values as written: "
                                 "templates are filled in journey steps and sync pairs, not here"),
    "template-sync-create-typo": ("{{ canary }}@", "{{ canery }}@",
                                  '{f}:26 probes.sync[0].create.with.email: unknown template variable "canery" '
                                  '(did you mean "canary"?)'),
    "template-sync-read-unknown": ('{email: "{{ email }}"}', '{email: "{{ heartbeat }}"}',
                                   '{f}:27 probes.sync[0].read.with.email: unknown template variable "heartbeat" '
                                   "(known to this read: canary, email, first_name, id, last_name, marker, now, "
                                   "now_unix, page_size, unique)"),
    "template-sweep-unknown": ('{tag: "{{ marker }}"}', '{tag: "{{ canary }}"}',
                               '{f}:28 probes.sync[0].sweep.with.tag: unknown template variable "canary" '
                               '(known to this sweep: marker, now, now_unix, page_size, unique)'),
    "template-in-the-profile": ("slos:\n", "profile: broken.yaml\nslos:\n",
                                '{d}/broken.yaml:46 operations.get_contact.path: expected placeholders like '
                                '"{{{{ name }}}}", "{{{{ name? }}}}" or "{{{{ name or \'text\' | map }}}}" '
                                '(docs/profiles.md, Templates), got "/api/v1/contacts/{{{{ id"'),
    # files the config names
    "ca-file-missing": ("tls: {verify: true}", "tls: {verify: true, ca_file: nowhere.pem}",
                        "{f}:6 target.tls.ca_file: file nowhere.pem not found"),
    "ca-file-not-a-certificate": ("tls: {verify: true}", "tls: {verify: true, ca_file: notes.txt}",
                                  "{f}:6 target.tls.ca_file: expected PEM certificates in notes.txt, which does "
                                  "not load (no certificate or crl found)"),
    "client-cert-and-key-swapped": ("tls: {verify: true}",
                                    "tls: {verify: true, client_cert: client.key, client_key: client.crt}",
                                    "{f}:6 target.tls.client_cert: expected a PEM certificate in client.key and its "
                                    "private key in client.crt; they do not load together (pem lib: swapped, "
                                    "or not a pair?)"),
    "client-key-without-cert": ("tls: {verify: true}", "tls: {verify: true, client_key: client.key}",
                                "{f}:6 target.tls.client_key: a client_key needs its client_cert"),
    "shape-csv-missing": ("multiple: 2}", "multiple: 2, csv: traffic.csv}",
                          "{f}:31 loadtest.shape.csv: file traffic.csv not found"),
    "shape-csv-binary": ("multiple: 2}", "multiple: 2, csv: binary.csv}",
                         "{f}:31 loadtest.shape.csv: binary.csv: expected a text CSV file, got binary data"),
    "shape-csv-bad-row": ("multiple: 2}", "multiple: 2, csv: badrow.csv}",
                          "{d}/badrow.csv:3 loadtest.shape.csv: expected hour,requests rows with a count of 0 "
                          "or more, got '1,lots'"),
    "shape-csv-nan-count": ("multiple: 2}", "multiple: 2, csv: nan.csv}",
                            "{d}/nan.csv:2 loadtest.shape.csv: expected hour,requests rows with a count of 0 "
                            "or more, got '0,nan'"),
    "shape-csv-all-zero": ("multiple: 2}", "multiple: 2, csv: zero.csv}",
                           "{f}:31 loadtest.shape.csv: expected traffic counts in zero.csv, found none above 0"),
    "secret-file-missing": ("${env:T_SECRET}", "${file:nope.txt}",
                            "{f}:5 target.auth.client_secret: cannot read secret file nope.txt"),
    "secret-file-binary": ("${env:T_SECRET}", "${file:secret.bin}",
                           "{f}:5 target.auth.client_secret: secret file secret.bin: expected a text secret "
                           "file, got binary data"),
    "secret-file-huge": ("${env:T_SECRET}", "${file:huge.txt}",
                         "{f}:5 target.auth.client_secret: secret file huge.txt: the secret file is 1 MiB; at "
                         "most 64 KiB is read (is this the right file?)"),
    "secret-env-unset": ("${env:T_SECRET}", "${env:T_NOT_SET_ANYWHERE}",
                         "{f}:5 target.auth.client_secret: environment variable T_NOT_SET_ANYWHERE is not set"),
    # webhook signatures
    "signature-two-secrets": (SYNC, WEBHOOK % '{header: X-Sig, secret: "${env:T_SECRET}", secret_from: $.s}',
                              "{f}:26 probes.sync[0].webhook.signature: give secret or secret_from, not both"),
    "signature-no-secret-source": (SYNC, WEBHOOK % "{header: X-Sig}",
                                   "{f}:24 probes.sync[0].webhook: signature has no secret: pass "
                                   "{{{{ webhook_secret }}}} (made by crmpulse) in subscribe.with, or give "
                                   "secret or secret_from"),
    "signature-bad-header": (SYNC, WEBHOOK % '{header: "X Sig: 1", secret: "${env:T_SECRET}"}',
                             "{f}:26 probes.sync[0].webhook.signature.header: string should match pattern "
                             "'^[A-Za-z0-9-]{{1,64}}$', got \"X Sig: 1\""),
    # named credentials
    "credential-unknown-type": ("  tls: {verify: true}", "  credentials: {jwt: {type: jwt}}\n  tls: {verify: true}",
                                "{f}:6 target.credentials.jwt.type: expected one of 'none', 'basic', 'bearer', "
                                "'api_key', 'oauth2_client_credentials', 'oauth2_password', got \"jwt\""),
    "credential-bad-name": ("  tls: {verify: true}",
                            '  credentials: {JWT: {type: bearer, token: "${env:T_SECRET}"}}\n  tls: {verify: true}',
                            '{f}:6 target.credentials.JWT: expected a name of lowercase letters, digits and "_" '
                            "starting with a letter (it becomes a metric label and a PromQL selector), got \"JWT\""),
    "credential-secret-written": ("  tls: {verify: true}",
                                  "  credentials: {pat: {type: bearer, token: abc123}}\n  tls: {verify: true}",
                                  "{f}:6 target.credentials.pat.token: expected a reference like ${{env:NAME}} or "
                                  "${{file:PATH}}: secrets are never written in the file, which ends up in git "
                                  "and in tickets"),
    # fallbacks and filters in a with
    "fallback-unfinished": ('with: {q: smith}', 'with: {q: "{{ name or }}"}',
                            '{f}:18 probes.checks[1].steps[0].with.q: expected placeholders like "{{{{ name }}}}", '
                            '"{{{{ name? }}}}" or "{{{{ name or \'text\' | map }}}}" (docs/profiles.md, Templates), '
                            'got "{{{{ name or }}}}"'),
    "fallback-of-unknown-names": ('{{ contact_id }}', '{{ contact_idd or deal_id }}',
                                  '{f}:19 probes.checks[1].steps[1].with.id: unknown template variable '
                                  '"contact_idd" or "deal_id" (did you mean "contact_id"?)'),
    "filter-unknown-in-a-with": ('with: {q: smith}', 'with: {q: "{{ unique | shout }}"}',
                                 '{f}:18 probes.checks[1].steps[0].with: unknown filter "shout" (this step may use '
                                 "first, join, odata, soql, sosl, string; value maps belong in the profile's "
                                 "operations)"),
    "filter-map-in-a-sync-create": ("{{ canary }}@", "{{ canary | stages }}@",
                                    '{f}:26 probes.sync[0].create.with: unknown filter "stages" (this create may use '
                                    "first, join, odata, soql, sosl, string; value maps belong in the profile's "
                                    "operations)"),
    # credentials to an origin not configured for them
    "absolute-url-with-credentials": ("slos:\n", "profile: elsewhere.yaml\nslos:\n",
                                      "{f}:8 profile: operation export_all sends target shop's credentials to "
                                      "http://10.9.9.9:8080, which is not an origin configured for them "
                                      "(http://127.0.0.1:8085): give it auth: false, or reach that API as a "
                                      "system of its own"),
}

# A profile with the profile-model syntax (value maps, named and fetched credentials, ids
# from headers, throttling, quota, pagination into a body); each case changes one thing in
# it: (old, new, the exact problem line), {p} is the profile file.
# (its sign-in operation is not called `login`: the sandbox profile has one, for bruteforce checks)
PROFILE_EXTRA = """\
maps:
  stages: {prospecting: PROSPECTING, proposal: PROPOSE}
credentials:
  session:
    type: operation
    operation: session_login
    token: $.access_token
throttled:
  - {status: 429}
  - {status: 403, body_regex: LIMIT}
quota:
  - {name: daily, window: 24h, limit: header:X-Limit, remaining: header:X-Remaining}
instance_url: $.instance_url
operations:
  session_login: {method: POST, path: /oauth/token, auth: false, json: {grant_type: password}}
  whoami_session: {path: /api/v1/me, auth: session}
  create_odata: {method: POST, path: /odata, expect: [204],
                 extract: {id: {from: "header:OData-EntityId", match: '\\(([^)]+)\\)'}}}
  search_body: {method: POST, path: /search, json: {stage: "{{ stage | stages }}"},
                paginate: {style: cursor, items: $.results, next: $.after, param: after, in: json}}
"""

PROFILE_CASES: dict[str, tuple[str, str, str]] = {
    "operation-header-content-length": ("  whoami_session: {path: /api/v1/me, auth: session}",
                                        "  whoami_session: {path: /api/v1/me, auth: session, "
                                        "headers: {content-length: '0'}}",
                                        "{p}:25 operations.whoami_session.headers: content-length is not a header "
                                        "to set: crmpulse frames each body itself (a second framing would make "
                                        "the request invalid); remove it"),
    "map-unknown-filter": ("{{ stage | stages }}", "{{ stage | stagse }}",
                           '{p}:28 operations.search_body.json: unknown filter "stagse" (did you mean "stages"?; '
                           "a value map is declared under maps:)"),
    "map-shadows-a-builtin": ("  stages: {", "  join: {a: b}\n  stages: {",
                              '{p}:2 maps.join: "join" is a built-in filter; give the map another name'),
    "map-value-a-list": ("prospecting: PROSPECTING", "prospecting: [a, b]",
                         "{p}:2 maps.stages.prospecting: expected text, a number or true/false, got a list"),
    "credential-operation-unknown": ("    operation: session_login\n", "    operation: session_logni\n",
                                     '{p}:6 credentials.session.operation: expected an operation of this profile, '
                                     'got "session_logni"'),
    "credential-fetched-with-itself": ("session_login: {method: POST, path: /oauth/token, auth: false",
                                       "session_login: {method: POST, path: /oauth/token, auth: session",
                                       "{p}:6 credentials.session.operation: operation session_login fetches credential "
                                       "session and cannot itself be sent with it"),
    "credential-token-not-a-jsonpath": ("token: $.access_token", "token: $.[access",
                                        '{p}:7 credentials.session.token.from: expected a JSONPath like '
                                        '"$.data[0].id", got "$.[access"'),
    "operation-auth-not-a-name": ("auth: session}", "auth: Session}",
                                  '{p}:25 operations.whoami_session.auth: expected true, false or the name of a '
                                  'credential (lowercase letters, digits and "_", starting with a letter), got '
                                  '"Session"'),
    "extract-match-without-a-group": ("match: '\\(([^)]+)\\)'", "match: 'OData'",
                                      "{p}:27 operations.create_odata.extract.id.match: expected a regular "
                                      "expression with one group (the value), got 'OData'"),
    "throttled-bad-regex": ("body_regex: LIMIT", "body_regex: '(LIMIT'",
                            "{p}:10 throttled[1].body_regex: expected a regular expression, got '(LIMIT' "
                            "(missing ), unterminated subpattern)"),
    "quota-without-used-or-remaining": (", remaining: header:X-Remaining}", "}",
                                        "{p}:12 quota[0]: a quota needs used or remaining (with limit)"),
    "quota-jsonpath-without-operation": ("remaining: header:X-Remaining}", "remaining: $.remaining}",
                                         '{p}:12 quota[0]: remaining: without an operation, quota values come from '
                                         'response headers: expected "header:NAME", got "$.remaining"'),
    "instance-url-not-a-jsonpath": ("instance_url: $.instance_url", "instance_url: instance_url[",
                                    '{p}:13 instance_url: expected a JSONPath like "$.data[0].id", got '
                                    '"instance_url["'),
    "paginate-in-somewhere-else": ("param: after, in: json}", "param: after, in: header}",
                                   "{p}:29 operations.search_body.paginate.in: expected one of 'query' or 'json', "
                                   'got "header"'),
}

# whole files that are hostile: -> the exact problem line
FILES: dict[str, tuple[str | bytes, str]] = {
    "billion-laughs": ("".join(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9 if p.strip() else ['"lol"'] * 9)
                               + "]\n" for p, c in zip(" abcdefgh", "abcdefghi", strict=True)),
                       "{f}:6: aliases expand the document past 100,000 values (an alias bomb?)"),
    "self-referencing-alias": ("target: &t\n  name: x\n  again: *t\n",
                               "{f}:1: an alias refers to a node that contains it"),
    "nested-5000-deep": ("target: " + "[" * 5000 + "\n", "{f}:1: nested more than 64 levels deep"),
    "block-nesting-100-deep": ("".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n",
                               "{f}:65: nested more than 64 levels deep"),
    "fifty-megabytes": ("target: {name: x, base_url: http://a}\n# " + "x" * (50 * 1024 * 1024) + "\n",
                        "{f}: the file is 50 MiB; at most 1 MiB is read (is this the right file?)"),
    "binary": (b"target:\x00\x01\x02\xff\n", "{f}: expected a text file, got binary data"),
    "not-utf8": (b"target: caf\xe9\n", "{f}: expected a UTF-8 text file, got other bytes"),
    "a-list": ("- 1\n- 2\n", "{f}:1: expected a mapping of sections (target, profile, slos, probes, loadtest)"),
}

WEB = {
    "users-as-a-list": ("basic_auth_users: [prometheus]\n",
                        "{w}:1 basic_auth_users: expected a mapping, got a list"),
    "tls-yes": ("tls_server_config: yes\n", "{w}:1 tls_server_config: expected a mapping, got True"),
    "hash-malformed": ("basic_auth_users:\n  prometheus: $2y$10$short\n",
                       '{w}:2 basic_auth_users.prometheus: expected a bcrypt hash like "$2y$10$" followed by 53 '
                       "characters (htpasswd -nBC 10 \"\" | tr -d ':\\n'), got a malformed one"),
    "hash-not-bcrypt": ("basic_auth_users:\n  prometheus: 5f4dcc3b5aa765d61d8327deb882cf99\n",
                        '{w}:2 basic_auth_users.prometheus: expected a bcrypt hash like "$2y$10$" followed by 53 '
                        "characters (htpasswd -nBC 10 \"\" | tr -d ':\\n'), got a malformed one"),
    "hash-cost-99": ("basic_auth_users:\n  prometheus: $2y$99$" + "a" * 53 + "\n",
                     "{w}:2 basic_auth_users.prometheus: expected a bcrypt cost from 04 to 31, got 99"),
    "cert-and-key-swapped": ("tls_server_config: {cert_file: web.key, key_file: web.crt}\n",
                             "{w}:1 tls_server_config.cert_file: expected a PEM certificate in web.key and its "
                             "private key in web.crt; they do not load together (pem lib: swapped, or not a pair?)"),
    "cert-missing": ("tls_server_config: {cert_file: none.crt, key_file: web.key}\n",
                     "{w}:1 tls_server_config.cert_file: file none.crt not found"),
    "key-missing-key": ("tls_server_config: {cert_file: web.crt}\n",
                        "{w}:1 tls_server_config.key_file: required key is missing"),
    "unknown-section": ("http_server_config: {http2: false}\n",
                        '{w}:1 http_server_config: unknown key (did you mean "tls_server_config"?)'),
}

ELSEWHERE = "operations:\n  export_all:\n    path: http://10.9.9.9:8080/export\n"


def write_fixtures(folder: Path) -> None:
    cert, key = make_certificate(folder, "client", days_valid=5)
    make_certificate(folder, "web", days_valid=5)
    del cert, key
    (folder / "notes.txt").write_text("not a certificate\n")
    (folder / "binary.csv").write_bytes(b"\x00\x01\x02hour,requests\n")
    (folder / "badrow.csv").write_text("hour,requests\n0,10\n1,lots\n")
    (folder / "nan.csv").write_text("hour,requests\n0,nan\n")
    (folder / "zero.csv").write_text("hour,requests\n0,0\n1,0\n")
    (folder / "secret.bin").write_bytes(b"\x00\xffsecret")
    (folder / "huge.txt").write_text("s" * (1024 * 1024))
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    assert "path: /api/v1/contacts/{{ id }}\n" in profile
    (folder / "broken.yaml").write_text(profile.replace("path: /api/v1/contacts/{{ id }}\n",
                                                        "path: /api/v1/contacts/{{ id\n", 1))
    (folder / "elsewhere.yaml").write_text(profile.replace("operations:\n", ELSEWHERE, 1))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-configs")
    write_fixtures(folder)
    return folder


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SECRET", "t-secret-value")


def check_config(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err.splitlines()


def case_dir(fixtures: Path, tmp_path: Path) -> Path:
    for item in fixtures.iterdir():
        shutil.copy(item, tmp_path / item.name)
    return tmp_path


def test_the_base_config_is_valid(fixtures: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = case_dir(fixtures, tmp_path) / "crmpulse.yaml"
    path.write_text(BASE)
    assert main(["check-config", str(path)]) == 0
    assert "valid (target shop" in capsys.readouterr().out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_value_is_one_located_line_and_exit_2(case: str, fixtures: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    old, new, expected = CASES[case]
    assert BASE.count(old) == 1, f"{old!r} must appear once in BASE"
    folder = case_dir(fixtures, tmp_path)
    path = folder / "crmpulse.yaml"
    path.write_text(BASE.replace(old, new))
    code, lines = check_config("check-config", str(path), capsys=capsys)
    assert lines == [expected.format(f=path, d=folder), "crmpulse: 1 problem found"]
    assert code == 2


def profile_case_dir(fixtures: Path, tmp_path: Path, profile_text: str) -> tuple[Path, Path]:
    folder = case_dir(fixtures, tmp_path)
    sandbox = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    head, _, rest = sandbox.partition("operations:\n")
    extra_head, _, extra_ops = profile_text.partition("operations:\n")
    profile = folder / "custom.yaml"
    profile.write_text(extra_head + head + "operations:\n" + extra_ops + rest)
    config = folder / "crmpulse.yaml"
    config.write_text(BASE.replace("slos:\n", "profile: custom.yaml\nslos:\n", 1))
    return config, profile


def test_the_base_profile_with_the_new_syntax_is_valid(fixtures: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = profile_case_dir(fixtures, tmp_path, PROFILE_EXTRA)
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(PROFILE_CASES))
def test_a_bad_profile_value_is_one_located_line_and_exit_2(case: str, fixtures: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    old, new, expected = PROFILE_CASES[case]
    assert PROFILE_EXTRA.count(old) == 1, f"{old!r} must appear once in PROFILE_EXTRA"
    config, profile = profile_case_dir(fixtures, tmp_path, PROFILE_EXTRA.replace(old, new))
    code, lines = check_config("check-config", str(config), capsys=capsys)
    assert lines == [expected.format(p=profile), "crmpulse: 1 problem found"]
    assert code == 2


def test_oauth_without_a_token_url_needs_an_authenticate_operation(fixtures: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = case_dir(fixtures, tmp_path)
    sandbox = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    start = sandbox.index("  authenticate:\n")
    (folder / "tokenless.yaml").write_text(sandbox[:start] + sandbox[sandbox.index("  whoami:\n"):]
                                           .replace("  - operation: authenticate\n", "", 1))
    config = folder / "crmpulse.yaml"
    config.write_text(BASE.replace("slos:\n", "profile: tokenless.yaml\nslos:\n", 1))
    code, lines = check_config("check-config", str(config), capsys=capsys)
    assert lines == [f"{config}:5 target.auth.type: profile sandbox has no authenticate operation to fetch "
                     "tokens from: give token_url", "crmpulse: 1 problem found"]
    assert code == 2
    config.write_text(BASE.replace("slos:\n", "profile: tokenless.yaml\nslos:\n", 1).replace(
        "client_id: crmpulse,", "client_id: crmpulse, token_url: /oauth/token,"))
    assert main(["check-config", str(config)]) == 0


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_hostile_file_is_refused_quickly_with_one_line(case: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    content, expected = FILES[case]
    path = tmp_path / "crmpulse.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, lines = check_config("check-config", str(path), capsys=capsys)
    assert lines == [expected.format(f=path), "crmpulse: 1 problem found"]
    assert code == 2


@pytest.mark.parametrize("case", sorted(WEB))
def test_a_bad_web_config_is_one_located_line_and_exit_2(case: str, fixtures: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    content, expected = WEB[case]
    folder = case_dir(fixtures, tmp_path)
    (folder / "crmpulse.yaml").write_text(BASE)
    web = folder / "web.yml"
    web.write_text(content)
    code, lines = check_config("probe", "-c", str(folder / "crmpulse.yaml"), "--web-config-file", str(web),
                               "--check-config", capsys=capsys)
    assert lines == [expected.format(w=web), "crmpulse: 1 problem found"]
    assert code == 2
