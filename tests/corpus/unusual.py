"""Valid but unusual requests: each must be answered 200 with the body given."""

from __future__ import annotations

OK = b"hello a"

VALID: list[tuple[str, bytes, bytes]] = [
    ("plain", b"GET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("absolute-form", b"GET http://t/hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("absolute-form-https-port", b"GET https://t:8443/hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("absolute-form-other-host", b"GET http://other/hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("absolute-form-upper-scheme", b"GET HTTP://t/hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("absolute-form-query-only", b"GET http://t/hello/a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("content-length-zero", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", OK),
    (
        "content-length-leading-zeros",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 005\r\n\r\nhello",
        OK,
    ),
    ("small-get-body", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", OK),
    (
        "get-body-that-looks-like-a-request",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 38\r\n\r\n"
        b"GET /hello/b HTTP/1.1\r\nHost: t\r\n\r\n\r\n\r\n",
        OK,
    ),
    (
        "body-at-the-limit",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nContent-Length: 65536\r\n\r\n" + b"x" * 65536,
        OK,
    ),
    (
        "chunked-get-body",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        OK,
    ),
    (
        "chunked-uppercase",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
        OK,
    ),
    (
        "chunked-with-extension",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;a=b\r\nhello\r\n0\r\n\r\n",
        OK,
    ),
    (
        "chunked-with-trailer",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nX-Trailer: y\r\n\r\n",
        OK,
    ),
    ("http10", b"GET /hello/a HTTP/1.0\r\n\r\n", OK),
    ("http10-keep-alive", b"GET /hello/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", OK),
    ("http10-with-host", b"GET /hello/a HTTP/1.0\r\nHost: t\r\n\r\n", OK),
    ("http10-body", b"GET /hello/a HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", OK),
    ("lowercase-names", b"GET /hello/a HTTP/1.1\r\nhost: t\r\naccept: */*\r\n\r\n", OK),
    ("uppercase-names", b"GET /hello/a HTTP/1.1\r\nHOST: t\r\nCONTENT-LENGTH: 0\r\n\r\n", OK),
    ("mixed-case-names", b'GET /hello/a HTTP/1.1\r\nhOsT: t\r\nIf-NONE-match: "x"\r\n\r\n', OK),
    (
        "many-small-headers",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(63))
        + b"\r\n",
        OK,
    ),
    (
        "header-at-the-size-limit",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 8191 + b"\r\n\r\n",
        OK,
    ),
    (
        "long-target-under-the-limit",
        b"GET /hello/a?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        OK,
    ),
    ("query-string", b"GET /hello/a?x=1&y=%20z HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("empty-query", b"GET /hello/a? HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    (
        "query-with-slashes-and-question-marks",
        b"GET /hello/a?next=/x?y HTTP/1.1\r\nHost: t\r\n\r\n",
        OK,
    ),
    (
        "expect-without-body",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
        OK,
    ),
    ("unknown-expectation", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nExpect: something\r\n\r\n", OK),
    ("tabs-in-ows", b"GET /hello/a HTTP/1.1\r\nHost:\tt\t\r\nAccept:\t*/*\r\n\r\n", OK),
    ("no-space-after-colon", b"GET /hello/a HTTP/1.1\r\nHost:t\r\n\r\n", OK),
    ("many-spaces-in-ows", b"GET /hello/a HTTP/1.1\r\nHost:      t     \r\n\r\n", OK),
    ("empty-header-value", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX-Empty:\r\n\r\n", OK),
    ("empty-host", b"GET /hello/a HTTP/1.1\r\nHost: \r\n\r\n", OK),
    ("host-with-port", b"GET /hello/a HTTP/1.1\r\nHost: t:8080\r\n\r\n", OK),
    ("host-ipv4", b"GET /hello/a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", OK),
    ("host-ipv6", b"GET /hello/a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", OK),
    ("host-trailing-dot", b"GET /hello/a HTTP/1.1\r\nHost: shop.example.\r\n\r\n", OK),
    ("host-punycode", b"GET /hello/a HTTP/1.1\r\nHost: xn--t-bga.example\r\n\r\n", OK),
    ("obs-text-in-value", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX: caf\xc3\xa9\xff\r\n\r\n", OK),
    (
        "token-punctuation-in-name",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX!#$%&'*+.^_`|~: v\r\n\r\n",
        OK,
    ),
    ("underscore-in-other-name", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nX_Custom: v\r\n\r\n", OK),
    ("leading-empty-line", b"\r\nGET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    ("connection-close", b"GET /hello/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", OK),
    (
        "connection-list",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, TE\r\nTE: trailers\r\n\r\n",
        OK,
    ),
    ("head", b"HEAD /hello/a HTTP/1.1\r\nHost: t\r\n\r\n", b""),
    ("percent-encoded-segment", b"GET /hello/%61 HTTP/1.1\r\nHost: t\r\n\r\n", OK),
    (
        "if-none-match-twice",
        b'GET /hello/a HTTP/1.1\r\nHost: t\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"\r\n\r\n',
        OK,
    ),
    (
        "cookie-and-forwarded",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nCookie: a=b; c=d\r\n"
        b"X-Forwarded-Host: evil\r\nForwarded: for=1.2.3.4\r\n\r\n",
        OK,
    ),
    (
        "very-long-user-agent",
        b"GET /hello/a HTTP/1.1\r\nHost: t\r\nUser-Agent: " + b"M" * 4000 + b"\r\n\r\n",
        OK,
    ),
]
