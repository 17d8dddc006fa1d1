/* Byte-level matching for _scan.c: the character classes of str.split() and str.splitlines()
 * for ASCII, and parse.py's patterns spelled out as deterministic scans. No Python objects here:
 * each function takes [p, end) and says where a match ends, or that there is none.
 */
#ifndef INBOXOPS_SCAN_MATCH_H
#define INBOXOPS_SCAN_MATCH_H

#include <Python.h>
#include <string.h>

/* Python's str.split() whitespace, for ASCII: \t \n \v \f \r, 0x1c-0x1f and the space */
static const unsigned char SPACE[256] = {
    ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [' '] = 1,
};
static inline int is_space(unsigned char c) { return SPACE[c]; }
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* like memmem, for the needles of this file */
static const char *find(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t k) {
    if (k > n) return NULL;
    const char *end = s + n - k;
    for (const char *p = s; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p + 1));
        if (p == NULL) return NULL;
        if (memcmp(p, needle, (size_t)k) == 0) return p;
    }
    return NULL;
}

static inline int starts(const char *p, const char *end, const char *lit, Py_ssize_t k) {
    return end - p >= k && memcmp(p, lit, (size_t)k) == 0;
}

/* [0-9A-Za-z]{5,25}: the queue id's end, or NULL */
static const char *queue_id(const char *p, const char *end) {
    const char *q = p;
    while (q < end && is_alnum(*q)) q++;
    return (q - p >= 5 && q - p <= 25) ? q : NULL;
}

/* one field set of charset test, at least `min` long, then ", "; the position after it or NULL */
static const char *run_then_comma(const char *p, const char *end, int (*ok)(char), int min) {
    const char *q = p;
    while (q < end && ok(*q)) q++;
    if (q - p < min || !starts(q, end, ", ", 2)) return NULL;
    return q + 2;
}
static int digit_or_dot(char c) { return is_digit(c) || c == '.'; }
static int digit_dot_slash(char c) { return is_digit(c) || c == '.' || c == '/'; }
static int only_digit(char c) { return is_digit(c); }

/* [\r\n]*\Z */
static int only_newlines(const char *p, const char *end) {
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    return p == end;
}

/* str.splitlines()'s line ends, for ASCII: \n, \r (and \r\n), \v, \f, 0x1c-0x1e */
static const unsigned char LINE_END[256] = {
    ['\n'] = 1, ['\r'] = 1, ['\v'] = 1, ['\f'] = 1, [0x1c] = 1, [0x1d] = 1, [0x1e] = 1,
};

/* <[^>]*>, (the opening '<' already read): the position after ">, ", the length inside in *n;
 * NULL when the first '>' is not followed by ", ". */
static const char *angled(const char *p, const char *end, Py_ssize_t *n) {
    const char *c = p;
    while (c < end && *c != '>') c++;
    if (!starts(c, end, ">, ", 3)) return NULL;
    *n = c - p;
    return c + 3;
}

/* The parsed fields of a delivery line (pointers into the line). */
typedef struct {
    const char *qid, *rcpt, *orig, *relay, *dsn, *status, *after;
    Py_ssize_t qid_n, rcpt_n, orig_n, relay_n, dsn_n, status_n;
} Delivery;

/* parse.py's _DELIVERY pattern, matched at the start of the text; 0 when it does not match */
static int delivery(const char *p, const char *end, Delivery *d) {
    const char *q = queue_id(p, end);
    if (q == NULL || !starts(q, end, ": to=<", 6)) return 0;
    d->qid = p;
    d->qid_n = q - p;
    d->rcpt = q + 6;
    const char *c = angled(d->rcpt, end, &d->rcpt_n);
    if (c == NULL) return 0;
    d->orig = NULL;
    d->orig_n = 0;
    if (starts(c, end, "orig_to=<", 9)) {
        d->orig = c + 9;
        if ((c = angled(d->orig, end, &d->orig_n)) == NULL) return 0;
    }
    if (!starts(c, end, "relay=", 6)) return 0;
    d->relay = c + 6;
    c = d->relay;
    while (c < end && *c != ',') c++;
    if (!starts(c, end, ", ", 2)) return 0;
    d->relay_n = c - d->relay;
    c += 2;
    if (starts(c, end, "conn_use=", 9) && (c = run_then_comma(c + 9, end, only_digit, 1)) == NULL)
        return 0;
    if (!starts(c, end, "delay=", 6) || (c = run_then_comma(c + 6, end, digit_or_dot, 1)) == NULL)
        return 0;
    if (starts(c, end, "delays=", 7) &&
        (c = run_then_comma(c + 7, end, digit_dot_slash, 1)) == NULL)
        return 0;
    if (!starts(c, end, "dsn=", 4)) return 0;
    d->dsn = c + 4;
    c = d->dsn;
    if (c >= end || (*c != '2' && *c != '4' && *c != '5') || !starts(c + 1, end, ".", 1))
        return 0;
    c += 2;
    for (int part = 0; part < 2; part++) {
        const char *digits = c;
        while (c < end && is_digit(*c) && c - digits < 3) c++;
        if (c == digits) return 0;
        if (part == 0) {
            if (!starts(c, end, ".", 1)) return 0;
            c++;
        }
    }
    d->dsn_n = c - d->dsn;
    if (!starts(c, end, ", status=", 9)) return 0;
    d->status = c + 9;
    c = d->status;
    while (c < end && ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) c++;
    if (c == d->status || !starts(c, end, " (", 2)) return 0;
    d->status_n = c - d->status;
    d->after = c + 2;
    return 1;
}

#endif
