"""Malformed and smuggling requests, each with the status the server must answer.

Written for this project in the spirit of gunicorn's `tests/requests/invalid` and
Varnish's VTC cases. Every request is answered once with `Connection: close`,
nothing after it is parsed, and no route handler runs. The tests append a valid
request to each one to prove that.
"""

from __future__ import annotations

H = b"Host: t\r\n"
TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100f4010000f00303"
    + "5a" * 32
    + "20"
    + "a5" * 32
    + "0008130213031301c02f0100009f0000000e000c0000096c6f63616c686f7374"
)
SSL2_HELLO = bytes.fromhex("802e0100020015000000100100800700c003008000060040")


def get(target: bytes = b"/hello/a", version: bytes = b"HTTP/1.1", headers: bytes = H) -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + headers + b"\r\n"


def with_headers(*lines: bytes, method: bytes = b"GET", body: bytes = b"") -> bytes:
    head = b"".join(line + b"\r\n" for line in lines)
    return method + b" /hello/a HTTP/1.1\r\n" + head + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked"

CASES: list[tuple[str, bytes, int]] = [
    # garbage and other protocols on the plain port
    ("garbage", b"GARBAGE\r\n\r\n", 400),
    ("nul-byte", b"\x00", 400),
    ("nul-line", b"\x00\r\n\r\n", 400),
    ("nul-then-request", b"\x00" + get(), 400),
    ("binary-noise", bytes(range(1, 40)) + b"\r\n\r\n", 400),
    ("tls-client-hello", TLS_CLIENT_HELLO, 400),
    ("sslv2-hello", SSL2_HELLO, 400),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("only-spaces", b"   \r\n\r\n", 400),
    ("json-body", b'{"a": 1}\r\n\r\n', 400),
    # request line and version
    ("http09", b"GET /hello/a\r\n\r\n", 400),
    ("http09-root", b"GET /\r\n\r\n", 400),
    ("http09-no-blank", b"GET /hello/a\r\n", 400),
    ("version-0.9", get(version=b"HTTP/0.9"), 400),
    ("version-1.2", get(version=b"HTTP/1.2"), 400),
    ("version-2.0", get(version=b"HTTP/2.0"), 400),
    ("version-3.0", get(version=b"HTTP/3.0"), 400),
    ("version-1.10", get(version=b"HTTP/1.10"), 400),
    ("version-01.1", get(version=b"HTTP/01.1"), 400),
    ("version-1", get(version=b"HTTP/1"), 400),
    ("version-11", get(version=b"HTTP/11"), 400),
    ("version-lowercase", get(version=b"http/1.1"), 400),
    ("version-no-slash", get(version=b"HTTP1.1"), 400),
    ("version-trailing-space", get(version=b"HTTP/1.1 "), 400),
    ("version-trailing-junk", get(version=b"HTTP/1.1x"), 400),
    ("version-huge", get(version=b"HTTP/" + b"1" * 90 + b".1"), 400),
    ("version-rtsp", get(version=b"RTSP/1.0"), 400),
    ("version-missing-space", b"GET /hello/aHTTP/1.1\r\n" + H + b"\r\n", 400),
    ("request-line-tab-separator", b"GET\t/hello/a\tHTTP/1.1\r\n" + H + b"\r\n", 400),
    # methods
    ("method-lowercase", b"get /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-unknown", b"FOO /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-nul", b"G\x00T /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-leading-space", b" GET /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-split", b"GE T /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-long", b"G" * 40 + b" /hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-missing", b"/hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-no-space", b"GET/hello/a HTTP/1.1\r\n" + H + b"\r\n", 400),
    # request target
    ("target-space", get(b"/hello/a b"), 400),
    ("target-nul", get(b"/hello/a\x00"), 400),
    ("target-high-byte", get(b"/hello/\xff"), 400),
    ("target-utf8-raw", get("/hello/été".encode()), 400),
    ("target-del", get(b"/hello/a\x7f"), 400),
    ("target-tab", get(b"/hello/a\tb"), 400),
    ("target-vt", get(b"/hello/a\x0bb"), 400),
    ("target-fragment", get(b"/hello/a#frag"), 400),
    ("target-fragment-query", get(b"/hello/a?x=1#frag"), 400),
    ("target-star", get(b"*"), 400),
    ("options-star", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("connect-authority", b"CONNECT t:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("authority-form-get", get(b"t:443"), 400),
    ("target-relative", get(b"hello/a"), 400),
    ("absolute-ftp", get(b"ftp://t/hello/a"), 400),
    ("absolute-one-slash", get(b"http:/t/hello/a"), 400),
    ("absolute-userinfo", get(b"http://u@t/hello/a"), 400),
    ("absolute-user-password", get(b"http://u:p@t/hello/a"), 400),
    ("absolute-bad-port", get(b"http://t:x/hello/a"), 400),
    ("absolute-empty-host", get(b"http:///hello/a"), 400),
    ("absolute-no-scheme-slashes", get(b"://t/hello/a"), 400),
    ("target-cr", get(b"/hello/a\rb"), 400),
    # line endings
    ("bare-lf-everywhere", b"GET /hello/a HTTP/1.1\nHost: t\n\n", 400),
    ("bare-lf-request-line", b"GET /hello/a HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare-lf-header", b"GET /hello/a HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400),
    ("bare-lf-end", b"GET /hello/a HTTP/1.1\r\n" + H + b"\n", 400),
    ("bare-lf-end-after-cr", b"GET /hello/a HTTP/1.1\r\nHost: t\n\r\n", 400),
    ("bare-cr-request-line", b"GET /hello/a HTTP/1.1\rHost: t\r\n\r\n", 400),
    ("bare-cr-header", b"GET /hello/a HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
    ("bare-cr-in-value", with_headers(b"Host: t", b"X: a\rb"), 400),
    ("bare-cr-end", b"GET /hello/a HTTP/1.1\r\n" + H + b"\r\r\n", 400),
    ("lf-cr-end", b"GET /hello/a HTTP/1.1\r\n" + H + b"\n\r", 400),
    # obs-fold
    ("obs-fold-space", with_headers(b"Host: t", b"X: a", b" b"), 400),
    ("obs-fold-tab", with_headers(b"Host: t", b"X: a", b"\tb"), 400),
    ("obs-fold-host", with_headers(b"Host:", b" t"), 400),
    ("obs-fold-first-line", b"GET /hello/a HTTP/1.1\r\n Host: t\r\n\r\n", 400),
    (
        "obs-fold-transfer-encoding",
        with_headers(b"Host: t", b"Transfer-Encoding:", b" chunked"),
        400,
    ),
    (
        "tab-prefixed-transfer-encoding",
        with_headers(b"Host: t", b"\tTransfer-Encoding: chunked"),
        400,
    ),
    ("space-prefixed-content-length", with_headers(b"Host: t", b" Content-Length: 5"), 400),
    # header names
    ("name-space-before-colon", with_headers(b"Host: t", b"X : y"), 400),
    ("name-tab-before-colon", with_headers(b"Host: t", b"X\t: y"), 400),
    ("host-space-before-colon", with_headers(b"Host : t"), 400),
    ("name-with-space", with_headers(b"Host: t", b"X Y: z"), 400),
    ("name-empty", with_headers(b"Host: t", b": y"), 400),
    ("name-no-colon", with_headers(b"Host: t", b"X"), 400),
    ("name-nul", with_headers(b"Host: t", b"X\x00: y"), 400),
    ("name-del", with_headers(b"Host: t", b"X\x7f: y"), 400),
    ("name-high-byte", with_headers(b"Host: t", b"X\xff: y"), 400),
    ("name-slash", with_headers(b"Host: t", b"X/Y: z"), 400),
    ("name-parenthesis", with_headers(b"Host: t", b"X(Y): z"), 400),
    ("name-at", with_headers(b"Host: t", b"X@Y: z"), 400),
    ("name-bracket", with_headers(b"Host: t", b"X[Y]: z"), 400),
    ("name-quote", with_headers(b"Host: t", b'X"Y: z'), 400),
    ("name-control", with_headers(b"Host: t", b"X\x01: y"), 400),
    ("name-crlf-inside", with_headers(b"Host: t", b"X\r: y"), 400),
    # header values
    ("value-nul", with_headers(b"Host: t", b"X: a\x00b"), 400),
    ("value-soh", with_headers(b"Host: t", b"X: a\x01b"), 400),
    ("value-bel", with_headers(b"Host: t", b"X: a\x07b"), 400),
    ("value-vt", with_headers(b"Host: t", b"X: a\x0bb"), 400),
    ("value-ff", with_headers(b"Host: t", b"X: a\x0cb"), 400),
    ("value-esc", with_headers(b"Host: t", b"X: a\x1bb"), 400),
    ("value-del", with_headers(b"Host: t", b"X: a\x7fb"), 400),
    ("value-nul-end", with_headers(b"Host: t", b"X: ab\x00"), 400),
    ("value-inm-nul", with_headers(b"Host: t", b'If-None-Match: "a\x00"'), 400),
    # Host (RFC 9112, 3.2)
    ("host-missing", b"GET /hello/a HTTP/1.1\r\n\r\n", 400),
    ("host-missing-with-others", with_headers(b"Accept: */*", b"X: y"), 400),
    ("host-missing-absolute-form", get(b"http://t/hello/a", headers=b""), 400),
    ("host-twice-same", with_headers(b"Host: t", b"Host: t"), 400),
    ("host-twice-different", with_headers(b"Host: a", b"Host: b"), 400),
    ("host-twice-cases", with_headers(b"host: a", b"HOST: a"), 400),
    ("host-space-inside", with_headers(b"Host: a b"), 400),
    ("host-slash", with_headers(b"Host: a/b"), 400),
    ("host-userinfo", with_headers(b"Host: u@a"), 400),
    ("host-bad-port", with_headers(b"Host: a:b"), 400),
    ("host-two-ports", with_headers(b"Host: a:80:90"), 400),
    ("host-list", with_headers(b"Host: a, b"), 400),
    ("host-unclosed-ipv6", with_headers(b"Host: [::1"), 400),
    ("host-question-mark", with_headers(b"Host: a?b"), 400),
    ("host-hash", with_headers(b"Host: a#b"), 400),
    ("host-backslash", with_headers(b"Host: a\\b"), 400),
    ("host-quote", with_headers(b'Host: "a"'), 400),
    ("host-nul", with_headers(b"Host: a\x00"), 400),
    ("host-utf8", with_headers("Host: é.example".encode()), 400),
    # Content-Length
    ("cl-list-equal", with_headers(b"Host: t", b"Content-Length: 5, 5", body=b"hello"), 400),
    ("cl-list-different", with_headers(b"Host: t", b"Content-Length: 5, 6", body=b"hello"), 400),
    ("cl-plus", with_headers(b"Host: t", b"Content-Length: +1", body=b"h"), 400),
    ("cl-minus-zero", with_headers(b"Host: t", b"Content-Length: -0"), 400),
    ("cl-negative", with_headers(b"Host: t", b"Content-Length: -1"), 400),
    ("cl-hex", with_headers(b"Host: t", b"Content-Length: 0x1", body=b"h"), 400),
    ("cl-underscore-digits", with_headers(b"Host: t", b"Content-Length: 1_0", body=b"h" * 10), 400),
    ("cl-space-digits", with_headers(b"Host: t", b"Content-Length: 1 0", body=b"h" * 10), 400),
    ("cl-decimal", with_headers(b"Host: t", b"Content-Length: 1.0", body=b"h"), 400),
    ("cl-exponent", with_headers(b"Host: t", b"Content-Length: 1e1", body=b"h" * 10), 400),
    ("cl-letters", with_headers(b"Host: t", b"Content-Length: 1a", body=b"h"), 400),
    ("cl-empty", with_headers(b"Host: t", b"Content-Length: "), 400),
    ("cl-leading-comma", with_headers(b"Host: t", b"Content-Length: ,5", body=b"hello"), 400),
    ("cl-trailing-comma", with_headers(b"Host: t", b"Content-Length: 5,", body=b"hello"), 400),
    ("cl-nul", with_headers(b"Host: t", b"Content-Length: 1\x00", body=b"h"), 400),
    ("cl-overflow", with_headers(b"Host: t", b"Content-Length: " + b"9" * 30), 400),
    (
        "cl-twice-equal",
        with_headers(b"Host: t", b"Content-Length: 1", b"Content-Length: 1", body=b"h"),
        400,
    ),
    (
        "cl-twice-different",
        with_headers(b"Host: t", b"Content-Length: 1", b"Content-Length: 2", body=b"hh"),
        400,
    ),
    ("cl-space-before-colon", with_headers(b"Host: t", b"Content-Length : 1", body=b"h"), 400),
    ("cl-tab-before-colon", with_headers(b"Host: t", b"Content-Length\t: 1", body=b"h"), 400),
    ("cl-underscore-name", with_headers(b"Host: t", b"Content_Length: 1", body=b"h"), 400),
    ("cl-underscore-lower", with_headers(b"Host: t", b"content_length: 1", body=b"h"), 400),
    ("cl-over-body-limit", with_headers(b"Host: t", b"Content-Length: 65537"), 413),
    ("cl-one-gigabyte", with_headers(b"Host: t", b"Content-Length: 1073741824"), 413),
    (
        "cl-over-limit-expect",
        with_headers(b"Host: t", b"Expect: 100-continue", b"Content-Length: 70000"),
        413,
    ),
    ("body-over-limit", with_headers(b"Host: t", b"Content-Length: 65537", body=b"x" * 65537), 413),
    # Content-Length and Transfer-Encoding together
    ("cl-then-te", with_headers(b"Host: t", b"Content-Length: 3", CHUNKED, body=b"0\r\n\r\n"), 400),
    ("te-then-cl", with_headers(b"Host: t", CHUNKED, b"Content-Length: 3", body=b"0\r\n\r\n"), 400),
    ("te-cl-zero", with_headers(b"Host: t", CHUNKED, b"Content-Length: 0", body=b"0\r\n\r\n"), 400),
    (
        "te-lower-cl",
        with_headers(
            b"Host: t", b"transfer-encoding: chunked", b"content-length: 5", body=b"0\r\n\r\n"
        ),
        400,
    ),
    (
        "te-identity-cl",
        with_headers(
            b"Host: t", b"Transfer-Encoding: identity", b"Content-Length: 5", body=b"hello"
        ),
        400,
    ),
    # Transfer-Encoding
    (
        "te-not-last-chunked",
        with_headers(b"Host: t", b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
        400,
    ),
    ("te-gzip-only", with_headers(b"Host: t", b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"), 400),
    (
        "te-gzip-chunked",
        with_headers(b"Host: t", b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
        400,
    ),
    ("te-identity", with_headers(b"Host: t", b"Transfer-Encoding: identity"), 400),
    ("te-xchunked", with_headers(b"Host: t", b"Transfer-Encoding: xchunked"), 400),
    ("te-chunkedx", with_headers(b"Host: t", b"Transfer-Encoding: chunkedx"), 400),
    (
        "te-chunked-param",
        with_headers(b"Host: t", b"Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-trailing-space",
        with_headers(b"Host: t", b"Transfer-Encoding: chunked ", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-trailing-tab",
        with_headers(b"Host: t", b"Transfer-Encoding: chunked\t", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-tab-value",
        with_headers(b"Host: t", b"Transfer-Encoding:\tchunked", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-space-tab-value",
        with_headers(b"Host: t", b"Transfer-Encoding: \tchunked", body=b"0\r\n\r\n"),
        400,
    ),
    ("te-repeated-headers", with_headers(b"Host: t", CHUNKED, CHUNKED, body=b"0\r\n\r\n"), 400),
    (
        "te-repeated-list",
        with_headers(b"Host: t", b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-split-headers",
        with_headers(b"Host: t", b"Transfer-Encoding: gzip", CHUNKED, body=b"0\r\n\r\n"),
        400,
    ),
    ("te-empty", with_headers(b"Host: t", b"Transfer-Encoding: "), 400),
    ("te-comma", with_headers(b"Host: t", b"Transfer-Encoding: ,chunked", body=b"0\r\n\r\n"), 400),
    (
        "te-quoted",
        with_headers(b"Host: t", b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-space-before-colon",
        with_headers(b"Host: t", b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te-underscore-name",
        with_headers(b"Host: t", b"Transfer_Encoding: chunked", body=b"0\r\n\r\n"),
        400,
    ),
    ("te-http10", b"GET /hello/a HTTP/1.0\r\n" + CHUNKED + b"\r\n\r\n0\r\n\r\n", 400),
    (
        "te-http10-cl",
        b"GET /hello/a HTTP/1.0\r\n" + CHUNKED + b"\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    # chunk framing
    ("chunk-size-missing", with_headers(b"Host: t", CHUNKED, body=b"\r\nhello\r\n0\r\n\r\n"), 400),
    (
        "chunk-size-trailing-space",
        with_headers(b"Host: t", CHUNKED, body=b"5 \r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    (
        "chunk-size-leading-space",
        with_headers(b"Host: t", CHUNKED, body=b" 5\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    (
        "chunk-size-negative",
        with_headers(b"Host: t", CHUNKED, body=b"-5\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk-size-0x", with_headers(b"Host: t", CHUNKED, body=b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-letter", with_headers(b"Host: t", CHUNKED, body=b"g\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-overflow", with_headers(b"Host: t", CHUNKED, body=b"f" * 20 + b"\r\n"), 400),
    ("chunk-size-bare-lf", with_headers(b"Host: t", CHUNKED, body=b"5\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-data-bare-lf", with_headers(b"Host: t", CHUNKED, body=b"5\r\nhello\n0\r\n\r\n"), 400),
    (
        "chunk-data-too-long",
        with_headers(b"Host: t", CHUNKED, body=b"5\r\nhelloXX\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk-data-no-crlf", with_headers(b"Host: t", CHUNKED, body=b"5\r\nhello0\r\n\r\n"), 400),
    ("chunk-last-bad-end", with_headers(b"Host: t", CHUNKED, body=b"0\r\n\r\r"), 400),
    ("chunk-last-bare-lf", with_headers(b"Host: t", CHUNKED, body=b"0\n\n"), 400),
    (
        "chunk-ext-bare-lf",
        with_headers(b"Host: t", CHUNKED, body=b"5;a=b\nhello\r\n0\r\n\r\n"),
        400,
    ),
    (
        "chunk-ext-nul",
        with_headers(b"Host: t", CHUNKED, body=b"5;a\x00\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk-trailer-no-colon", with_headers(b"Host: t", CHUNKED, body=b"0\r\nX\r\n\r\n"), 400),
    ("chunk-trailer-nul", with_headers(b"Host: t", CHUNKED, body=b"0\r\nX: a\x00\r\n\r\n"), 400),
    (
        "chunk-trailer-content-length",
        with_headers(b"Host: t", CHUNKED, body=b"0\r\nContent-Length: 5\r\n\r\n"),
        400,
    ),
    (
        "chunk-trailer-second-host",
        with_headers(b"Host: t", CHUNKED, body=b"0\r\nHost: u\r\n\r\n"),
        400,
    ),
    (
        "chunk-over-body-limit",
        with_headers(b"Host: t", CHUNKED, body=b"10001\r\n" + b"x" * 65537 + b"\r\n0\r\n\r\n"),
        413,
    ),
    # limits
    ("request-line-too-long", get(b"/hello/" + b"a" * 9000), 414),
    ("query-too-long", get(b"/hello/a?" + b"q" * 9000), 414),
    ("header-value-too-long", with_headers(b"Host: t", b"X: " + b"a" * 9000), 431),
    ("header-name-too-long", with_headers(b"Host: t", b"X" * 9000 + b": a"), 431),
    ("host-too-long", with_headers(b"Host: " + b"a" * 9000), 431),
    ("too-many-headers", with_headers(b"Host: t", *[b"X-%d: a" % i for i in range(70)]), 431),
    ("too-many-empty-values", with_headers(b"Host: t", *[b"X:"] * 70), 431),
    (
        "head-too-large",
        with_headers(b"Host: t", *[b"X-%d: " % i + b"a" * 8000 for i in range(5)]),
        431,
    ),
    ("endless-header-line", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 90000, 431),
    # methods other than GET and HEAD on a known route: 405, Allow, then close
    ("post", with_headers(b"Host: t", b"Content-Length: 0", method=b"POST"), 405),
    (
        "post-with-body",
        with_headers(b"Host: t", b"Content-Length: 5", method=b"POST", body=b"hello"),
        405,
    ),
    (
        "post-chunked-body",
        with_headers(b"Host: t", CHUNKED, method=b"POST", body=b"5\r\nhello\r\n0\r\n\r\n"),
        405,
    ),
    ("put", with_headers(b"Host: t", b"Content-Length: 0", method=b"PUT"), 405),
    ("delete", with_headers(b"Host: t", method=b"DELETE"), 405),
    ("patch", with_headers(b"Host: t", b"Content-Length: 0", method=b"PATCH"), 405),
    ("options", with_headers(b"Host: t", method=b"OPTIONS"), 405),
    ("trace", with_headers(b"Host: t", method=b"TRACE"), 405),
    ("propfind", with_headers(b"Host: t", method=b"PROPFIND"), 405),
    ("purge", with_headers(b"Host: t", method=b"PURGE"), 405),
]
