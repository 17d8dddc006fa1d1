/* One aggregate report <record> -> its values, read in C from the tree lxml built.
 *
 * Why: a 100,000-record report spends more time in records.record_values (one Python proxy per
 * child element, .tag and .text on each: about 8 us a record) than in libxml2's parse itself
 * (about 5 us). This module reads the same elements straight from libxml2's nodes, which lxml
 * already holds, and builds the same tuple: about 1 us.
 *
 * It is an accelerator, never a second reader. It returns a value only for a record it knows
 * completely: every text it reads is printable ASCII, the IP parses, the count is a plausible
 * whole number. For anything else (a record records.py would drop or clean, non-ASCII text, a
 * text split over many nodes past the buffer) it returns None and records.record_values reads
 * that record. tests/test_dmarc_walk.py holds the two to the same output, record by record.
 *
 * What it relies on, and how that is checked before it is used (records.py, _bind()):
 * - lxml's element proxy starts with {PyObject_HEAD; document; xmlNode *}: lxml's public C-API
 *   struct LxmlElement (etree.h). bind() compares the type's size with this layout, and
 *   records.py reads a probe record both ways before it trusts the result.
 * - libxml2's xmlNode begins as its public ABI has since 2.x (tree.h: struct _xmlNode). Only
 *   the fields up to `content` are read; nothing is ever written or freed here.
 * - lxml's .text is libxml2's run of text and CDATA nodes from the first child, skipping
 *   XInclude markers (lxml's _collectText): read_text() follows the same rule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

typedef struct Node {
    void *private_;
    int type;
    const char *name;
    struct Node *children, *last, *parent, *next, *prev;
    void *doc;
    void *ns;
    const char *content;
} Node;

typedef struct {
    PyObject_HEAD
    void *doc;
    Node *c_node;
    PyObject *tag;
} Proxy;

#define ELEMENT 1
#define TEXT 3
#define CDATA 4
#define XINCLUDE_START 19
#define XINCLUDE_END 20

#define MAX_TEXT 1024 /* records.py's _MAX_TEXT */
#define MAX_JOINED 2048 /* a text split over several nodes is joined here; longer goes to Python */
#define MAX_COUNT 2147483648LL /* records.py's MAX_COUNT */

#define OK 0
#define PYTHON 1 /* records.py reads this record */
#define FAIL -1  /* a Python error is set */

static PyTypeObject *element_type = NULL;
static PyObject *s_dkim, *s_spf, *s_other, *s_empty;

/* A text as read: where it is, how long. */
typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

static const char *local(const Node *node) {
    /* records.local_name: the tag after its namespace; lxml's tag is "{href}name". */
    const char *name = node->name;
    const char *brace = name ? strrchr(name, '}') : NULL;
    return brace ? brace + 1 : name;
}

static int is(const char *name, const char *want) { return name && strcmp(name, want) == 0; }

static const Node *text_node(const Node *node) {
    while (node) {
        if (node->type == TEXT || node->type == CDATA)
            return node;
        if (node->type != XINCLUDE_START && node->type != XINCLUDE_END)
            return NULL;
        node = node->next;
    }
    return NULL;
}

/* The element's .text, stripped of ASCII spaces, as a span; PYTHON if any of it is not
 * printable ASCII (Python's strip() and isprintable() then decide) or it is split over nodes
 * whose joint length passes MAX_JOINED. `buf` holds a joined text. */
static int read_text(const Node *el, char *buf, Span *out) {
    const Node *first = text_node(el->children);
    const char *p = "";
    Py_ssize_t n = 0;
    if (first) {
        const Node *second = text_node(first->next);
        if (!second) {
            p = first->content ? first->content : "";
            n = (Py_ssize_t)strlen(p);
        } else {
            for (const Node *t = first; t; t = text_node(t->next)) {
                size_t len = t->content ? strlen(t->content) : 0;
                if (n + (Py_ssize_t)len > MAX_JOINED)
                    return PYTHON;
                if (len) {
                    memcpy(buf + n, t->content, len);
                    n += (Py_ssize_t)len;
                }
            }
            p = buf;
        }
    }
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return PYTHON;
    out->p = p;
    out->n = n;
    return OK;
}

/* The strs made lately, by content: a report repeats the same few values (verdicts, its
 * domains, selectors, often its sending IPs) in every record, and one object for each makes the
 * records cheaper to build, to pickle to the writer (pickle refers to an object it has sent)
 * and to keep. Direct-mapped by hash; a slot only ever holds a str equal to its key. */
#define SEEN 2048
#define SEEN_MAX 64
static PyObject *seen[SEEN];

/* A str of n ASCII characters, lower-cased if asked. */
static PyObject *ascii_str(const char *p, Py_ssize_t n, int lower) {
    char text[SEEN_MAX];
    PyObject *value;
    if (n > SEEN_MAX) {
        if (!(value = PyUnicode_New(n, 127)))
            return NULL;
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(value);
        for (Py_ssize_t i = 0; i < n; i++)
            out[i] = (Py_UCS1)(lower && p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
        return value;
    }
    unsigned int h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = lower && p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + 32) : p[i];
        text[i] = c;
        h = (h ^ (unsigned char)c) * 16777619u;
    }
    PyObject **slot = &seen[(h ^ (unsigned int)n) % SEEN];
    if (*slot && PyUnicode_GET_LENGTH(*slot) == n &&
        memcmp(PyUnicode_1BYTE_DATA(*slot), text, (size_t)n) == 0)
        return Py_NewRef(*slot);
    if (!(value = PyUnicode_New(n, 127)))
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(value), text, (size_t)n);
    Py_XSETREF(*slot, Py_NewRef(value));
    return value;
}

/* A str of the span's first `cut` characters, lower-cased if asked; None when empty and
 * `none_if_empty`. Replaces *slot (a field read twice keeps its last value, as in Python). */
static int put(PyObject **slot, Span s, Py_ssize_t cut, int lower, int none_if_empty) {
    Py_ssize_t n = s.n < cut ? s.n : cut;
    PyObject *value = n == 0 && none_if_empty ? Py_NewRef(Py_None) : ascii_str(s.p, n, lower);
    if (!value)
        return FAIL;
    Py_XSETREF(*slot, value);
    return OK;
}

/* read_text() then put(). */
static int field(const Node *el, PyObject **slot, Py_ssize_t cut, int lower, int none_if_empty,
                 char *buf) {
    Span s;
    int rc = read_text(el, buf, &s);
    return rc != OK ? rc : put(slot, s, cut, lower, none_if_empty);
}

/* The record's "aligned" flags (records.py compares the whole verdict with "pass"; one cut to
 * 16 characters is "pass" exactly when the whole one was). */
static int pass(PyObject *value) {
    return value && PyUnicode_Check(value) && PyUnicode_GET_LENGTH(value) == 4 &&
           memcmp(PyUnicode_1BYTE_DATA(value), "pass", 4) == 0;
}

/* records._ip: canonical text of an IPv4 or IPv6 address, IPv4-mapped IPv6 as IPv4. */
static int ip_value(Span s, PyObject **out) {
    char in[64], text[INET6_ADDRSTRLEN];
    unsigned char raw[16];
    while (s.n && (*s.p == '[' || *s.p == ']')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == '[' || s.p[s.n - 1] == ']'))
        s.n--;
    if (s.n == 0 || s.n >= (Py_ssize_t)sizeof in)
        return PYTHON;
    memcpy(in, s.p, (size_t)s.n);
    in[s.n] = '\0';
    int family = memchr(in, ':', (size_t)s.n) ? AF_INET6 : AF_INET;
    if (inet_pton(family, in, raw) != 1 || !inet_ntop(family, raw, text, sizeof text))
        return PYTHON;
    const char *canonical = text;
    if (family == AF_INET6 && strncmp(text, "::ffff:", 7) == 0 && strchr(text, '.'))
        canonical += 7;
    *out = ascii_str(canonical, (Py_ssize_t)strlen(canonical), 0);
    return *out ? OK : FAIL;
}

static int count_value(Span s, PyObject **out) {
    long long value = 0;
    Py_ssize_t i = 0;
    if (s.n == 0)
        return PYTHON;
    while (i < s.n - 1 && s.p[i] == '0')
        i++;
    if (s.n - i > 12)
        return PYTHON;
    for (; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return PYTHON;
        value = value * 10 + (s.p[i] - '0');
    }
    if (value > MAX_COUNT)
        return PYTHON;
    *out = PyLong_FromLongLong(value);
    return *out ? OK : FAIL;
}

typedef struct {
    PyObject *ip, *count, *disposition, *dkim, *spf, *header_from, *envelope_from, *envelope_to;
    PyObject *reasons, *auth;
    Span ip_text, count_text;
    int have_ip, have_count;
    char buf[MAX_JOINED];
} Rec;

/* records._reason: (type, comment) of one <reason>, or nothing when both are empty. */
static int reason(const Node *pe, Rec *r) {
    PyObject *type = NULL, *comment = NULL, *pair;
    int rc = OK;
    for (const Node *c = pe->children; c && rc == OK; c = c->next) {
        if (c->type != ELEMENT)
            continue;
        const char *cn = local(c);
        if (is(cn, "type"))
            rc = field(c, &type, MAX_TEXT, 1, 0, r->buf);
        else if (is(cn, "comment"))
            rc = field(c, &comment, MAX_TEXT, 0, 0, r->buf);
    }
    int empty_type = !type || PyUnicode_GET_LENGTH(type) == 0;
    int empty_comment = !comment || PyUnicode_GET_LENGTH(comment) == 0;
    if (rc == OK && !(empty_type && empty_comment)) {
        if (!r->reasons && !(r->reasons = PyList_New(0)))
            rc = FAIL;
        else {
            pair = PyTuple_Pack(2, empty_type ? s_other : type, empty_comment ? Py_None : comment);
            if (!pair || PyList_Append(r->reasons, pair) < 0)
                rc = FAIL;
            Py_XDECREF(pair);
        }
    }
    Py_XDECREF(type);
    Py_XDECREF(comment);
    return rc;
}

static int row(const Node *part, Rec *r) {
    int rc = OK;
    for (const Node *c = part->children; c && rc == OK; c = c->next) {
        if (c->type != ELEMENT)
            continue;
        const char *cn = local(c);
        if (is(cn, "source_ip")) {
            rc = read_text(c, r->buf, &r->ip_text);
            if (rc == OK && r->ip_text.p == r->buf)
                return PYTHON; /* a joined text would not outlive the next read */
            r->have_ip = 1;
        } else if (is(cn, "count")) {
            rc = read_text(c, r->buf, &r->count_text);
            if (rc == OK && r->count_text.p == r->buf)
                return PYTHON;
            r->have_count = 1;
        } else if (is(cn, "policy_evaluated")) {
            for (const Node *pe = c->children; pe && rc == OK; pe = pe->next) {
                if (pe->type != ELEMENT)
                    continue;
                const char *pn = local(pe);
                if (is(pn, "disposition"))
                    rc = field(pe, &r->disposition, 16, 1, 1, r->buf);
                else if (is(pn, "dkim"))
                    rc = field(pe, &r->dkim, 16, 1, 1, r->buf);
                else if (is(pn, "spf"))
                    rc = field(pe, &r->spf, 16, 1, 1, r->buf);
                else if (is(pn, "reason"))
                    rc = reason(pe, r);
            }
        }
    }
    return rc;
}

static int identifiers(const Node *part, Rec *r) {
    int rc = OK;
    for (const Node *c = part->children; c && rc == OK; c = c->next) {
        if (c->type != ELEMENT)
            continue;
        const char *cn = local(c);
        if (is(cn, "header_from"))
            rc = field(c, &r->header_from, 255, 1, 1, r->buf);
        else if (is(cn, "envelope_from"))
            rc = field(c, &r->envelope_from, 255, 1, 1, r->buf);
        else if (is(cn, "envelope_to"))
            rc = field(c, &r->envelope_to, 255, 1, 1, r->buf);
    }
    return rc;
}

/* One <dkim> or <spf> of <auth_results>: appended when it has a result. */
static int auth(const Node *a, PyObject *method, Rec *r) {
    PyObject *domain = NULL, *result = NULL, *selector = NULL, *scope = NULL, *human = NULL;
    int rc = OK;
    for (const Node *c = a->children; c && rc == OK; c = c->next) {
        if (c->type != ELEMENT)
            continue;
        const char *cn = local(c);
        if (is(cn, "domain"))
            rc = field(c, &domain, 255, 1, 0, r->buf);
        else if (is(cn, "result"))
            rc = field(c, &result, 16, 1, 0, r->buf);
        else if (is(cn, "selector"))
            rc = field(c, &selector, 255, 0, 1, r->buf);
        else if (is(cn, "scope"))
            rc = field(c, &scope, 16, 1, 1, r->buf);
        else if (is(cn, "human_result"))
            rc = field(c, &human, MAX_TEXT, 0, 1, r->buf);
    }
    if (rc == OK && result && PyUnicode_GET_LENGTH(result) > 0) {
        PyObject *values = PyTuple_Pack(6, method, domain ? domain : s_empty,
                                        selector ? selector : Py_None, result,
                                        scope ? scope : Py_None, human ? human : Py_None);
        if (!r->auth && !(r->auth = PyList_New(0)))
            rc = FAIL;
        else if (!values || PyList_Append(r->auth, values) < 0)
            rc = FAIL;
        Py_XDECREF(values);
    }
    Py_XDECREF(domain);
    Py_XDECREF(result);
    Py_XDECREF(selector);
    Py_XDECREF(scope);
    Py_XDECREF(human);
    return rc;
}

static int auth_results(const Node *part, Rec *r) {
    int rc = OK;
    for (const Node *a = part->children; a && rc == OK; a = a->next) {
        if (a->type != ELEMENT)
            continue;
        const char *method = local(a);
        if (is(method, "dkim"))
            rc = auth(a, s_dkim, r);
        else if (is(method, "spf"))
            rc = auth(a, s_spf, r);
    }
    return rc;
}

static PyObject *none_or(PyObject *value) { return value ? value : Py_None; }

static PyObject *as_tuple(PyObject *list) {
    return list ? PyList_AsTuple(list) : PyTuple_New(0);
}

static PyObject *build(Rec *r) {
    PyObject *ip = NULL, *count = NULL, *reasons = NULL, *auths = NULL, *result = NULL;
    if (!r->have_ip || !r->have_count)
        return Py_NewRef(Py_None);
    int rc = ip_value(r->ip_text, &ip);
    if (rc == OK)
        rc = count_value(r->count_text, &count);
    if (rc == OK && (reasons = as_tuple(r->reasons)) && (auths = as_tuple(r->auth))) {
        result = Py_BuildValue("(OOOOOOOOOOOO)", ip, count, none_or(r->disposition),
                               none_or(r->dkim), none_or(r->spf), none_or(r->header_from),
                               none_or(r->envelope_from), none_or(r->envelope_to), reasons, auths,
                               pass(r->dkim) ? Py_True : Py_False,
                               pass(r->spf) ? Py_True : Py_False);
    } else if (rc == PYTHON) {
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(ip);
    Py_XDECREF(count);
    Py_XDECREF(reasons);
    Py_XDECREF(auths);
    return result;
}

static PyObject *record(PyObject *module, PyObject *el) {
    (void)module;
    if (!element_type) {
        PyErr_SetString(PyExc_RuntimeError, "bind() has not been called");
        return NULL;
    }
    if (!PyObject_TypeCheck(el, element_type)) {
        PyErr_SetString(PyExc_TypeError, "record() takes an lxml element");
        return NULL;
    }
    const Node *node = ((Proxy *)el)->c_node;
    if (!node || node->type != ELEMENT)
        return Py_NewRef(Py_None);
    Rec r;
    memset(&r, 0, offsetof(Rec, buf));
    int rc = OK;
    for (const Node *part = node->children; part && rc == OK; part = part->next) {
        if (part->type != ELEMENT)
            continue;
        const char *name = local(part);
        if (is(name, "row"))
            rc = row(part, &r);
        else if (is(name, "identifiers"))
            rc = identifiers(part, &r);
        else if (is(name, "auth_results"))
            rc = auth_results(part, &r);
    }
    PyObject *result = rc == FAIL ? NULL : rc == PYTHON ? Py_NewRef(Py_None) : build(&r);
    Py_XDECREF(r.disposition);
    Py_XDECREF(r.dkim);
    Py_XDECREF(r.spf);
    Py_XDECREF(r.header_from);
    Py_XDECREF(r.envelope_from);
    Py_XDECREF(r.envelope_to);
    Py_XDECREF(r.reasons);
    Py_XDECREF(r.auth);
    return result;
}

static PyObject *bind_type(PyObject *module, PyObject *type) {
    (void)module;
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes lxml.etree._Element");
        return NULL;
    }
    if (((PyTypeObject *)type)->tp_basicsize != (Py_ssize_t)sizeof(Proxy))
        Py_RETURN_FALSE; /* not the layout this module reads: records.py walks in Python */
    Py_XSETREF(element_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"bind", bind_type, METH_O,
     "bind(lxml.etree._Element) -> bool: whether the element layout is the one this reads."},
    {"record", record, METH_O,
     "record(element) -> the record's values as records.record_values gives them, or None "
     "when records.record_values must read it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_walk", "One DMARC <record> read in C (see _walk.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__walk(void) {
    s_dkim = PyUnicode_InternFromString("dkim");
    s_spf = PyUnicode_InternFromString("spf");
    s_other = PyUnicode_InternFromString("other");
    s_empty = PyUnicode_InternFromString("");
    if (!s_dkim || !s_spf || !s_other || !s_empty)
        return NULL;
    return PyModule_Create(&module_def);
}
