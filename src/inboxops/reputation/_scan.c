/* The Postfix log parser's hot loop in C: the common lines, read exactly as parse.py reads them.
 *
 * Why: a fleet log is millions of lines, and parse.py's loop is at the floor of what Python can
 * do per line (docs/benchmarks.md: mypyc, str.find and a flat walk all measured no faster).
 * This module is an accelerator, never a second parser: it takes the lines whose shape it knows
 * completely (ASCII; a classic syslog or RFC 3339 stamp; a noise line, a qmgr from=/removed
 * line, or a delivery line the unquoted pattern matches) and yields the very tuples
 * PostfixLogParser._loop would. Everything else, it stops at and hands back: the Python loop
 * reads that one line, with the same clock and caches, and then this scan goes on. So the
 * Python loop stays the reference (and the fallback where no compiler was at hand), and
 * tests/test_reputation_scan.py holds the two to the same output, line by line.
 *
 * Files: this one holds the Scanner type and the line loop; _scan_records.h builds the records
 * (timestamps, qmgr lines, attempts, the name and host caches); _scan_match.h matches bytes.
 *
 * State shared with Python (the objects themselves, not copies): the syslog-name cache and its
 * learn(), the clock's minute cache and its syslog()/iso(), the relay cache and _relay(), the
 * reply classifier, the counters list, and bad() for lines Python would call malformed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <string.h>

#include "_scan_match.h"

#define K_DELIVERY 10
#define K_QMGR 11
#define K_NOTIFY 12
#define NCOUNTS 6
#define C_ATTEMPTS 0
#define C_QUEUE 1
#define C_OTHER 3
#define MAX_REPLY 1000
#define ATTEMPT 0
#define MESSAGE_FROM 1
#define EXPIRED 2
#define REMOVED 4

/* Syslog program tokens seen lately ("postfix-out05/smtp[4711]:") and their (name, service,
 * kind): direct-mapped by hash, so the common line costs no str object and no dict lookup. The
 * info of a token never changes, so a stale slot is only ever overwritten, never wrong. */
#define PROGRAMS 1024
#define PROGRAM_MAX 48
typedef struct {
    Py_ssize_t len;
    char key[PROGRAM_MAX];
    PyObject *info;
    long kind;
} Program;

typedef struct {
    PyObject_HEAD
    Program programs[PROGRAMS];
    PyObject *names, *learn, *bad, *counts, *minutes, *syslog, *iso, *relays, *relay;
    PyObject *classify, *accepted, *bad_relay;
    PyObject *sent, *deferred, *bounced;  /* the parser's status words */
    PyObject *kinds[5];                   /* the record kinds as ints */
    char last_stamp[15];  /* the last event line's stamp and its time */
    int have_last;
    double last_ts;
    char last_minute[12];  /* the last minute looked up ("Nov 24 14:49") and its epoch */
    int have_minute;
    double minute_base;
    char last_host[64];  /* the last host name made into a str, and that str */
    Py_ssize_t last_host_n;
    PyObject *host;
} Scanner;

static PyObject *text(const char *p, Py_ssize_t n) { return PyUnicode_FromStringAndSize(p, n); }

/* Where a line's text lives: a str of its own, or a stretch of a block of lines. */
typedef struct {
    PyObject *obj;
    Py_ssize_t off;
    Py_ssize_t len;
} Src;

/* The line's first n characters as a str (a new reference). */
static PyObject *src_line(const Src *src, Py_ssize_t n) {
    if (src->off == 0 && n == PyUnicode_GET_LENGTH(src->obj)) {
        Py_INCREF(src->obj);
        return src->obj;
    }
    return PyUnicode_Substring(src->obj, src->off, src->off + n);
}

/* bad(line): DONE, or FAIL */
static int call_bad(Scanner *s, const Src *src) {
    PyObject *line = src_line(src, src->len);
    if (line == NULL) return -1;
    PyObject *b = PyObject_CallOneArg(s->bad, line);
    Py_DECREF(line);
    if (b == NULL) return -1;
    Py_DECREF(b);
    return 0;
}

/* A tuple of n new references (stolen); NULL, with every one released, if any is NULL. */
static PyObject *pack(int n, ...) {
    PyObject *items[8];
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        items[i] = va_arg(ap, PyObject *);
        if (items[i] == NULL) ok = 0;
    }
    va_end(ap);
    PyObject *t = ok ? PyTuple_New(n) : NULL;
    for (int i = 0; i < n; i++) {
        if (t != NULL)
            PyTuple_SET_ITEM(t, i, items[i]);
        else
            Py_XDECREF(items[i]);
    }
    return t;
}

static PyObject *new_ref(PyObject *o) {
    Py_INCREF(o);
    return o;
}

static void Scanner_dealloc(Scanner *s) {
    Py_XDECREF(s->names); Py_XDECREF(s->learn); Py_XDECREF(s->bad); Py_XDECREF(s->counts);
    Py_XDECREF(s->minutes); Py_XDECREF(s->syslog); Py_XDECREF(s->iso); Py_XDECREF(s->relays);
    Py_XDECREF(s->relay); Py_XDECREF(s->classify); Py_XDECREF(s->accepted);
    Py_XDECREF(s->bad_relay); Py_XDECREF(s->sent); Py_XDECREF(s->deferred);
    Py_XDECREF(s->bounced);
    for (int i = 0; i < 5; i++) Py_XDECREF(s->kinds[i]);
    for (int i = 0; i < PROGRAMS; i++) Py_XDECREF(s->programs[i].info);
    Py_XDECREF(s->host);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int Scanner_init(Scanner *s, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"names", "learn", "bad", "counts", "minutes", "syslog", "iso",
                             "relays", "relay", "classify", "accepted", "bad_relay", NULL};
    PyObject *o[12];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!OOO!O!OOO!OOUO", kwlist, &PyDict_Type, &o[0],
                                     &o[1], &o[2], &PyList_Type, &o[3], &PyDict_Type, &o[4],
                                     &o[5], &o[6], &PyDict_Type, &o[7], &o[8], &o[9], &o[10],
                                     &o[11]))
        return -1;
    if (PyList_GET_SIZE(o[3]) != NCOUNTS) {
        PyErr_SetString(PyExc_ValueError, "counts must hold 6 counters");
        return -1;
    }
    PyObject **slot[12] = {&s->names, &s->learn, &s->bad, &s->counts, &s->minutes, &s->syslog,
                           &s->iso, &s->relays, &s->relay, &s->classify, &s->accepted,
                           &s->bad_relay};
    for (int i = 0; i < 12; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*slot[i], o[i]);
    }
    Py_XSETREF(s->sent, PyUnicode_InternFromString("sent"));
    Py_XSETREF(s->deferred, PyUnicode_InternFromString("deferred"));
    Py_XSETREF(s->bounced, PyUnicode_InternFromString("bounced"));
    for (int i = 0; i < 5; i++) Py_XSETREF(s->kinds[i], PyLong_FromLong(i));
    s->have_last = s->have_minute = 0;
    return 0;
}

/* Where the scan stops: the line at this index is Python's to read. */
#define SLOW -2
/* The line was dealt with (counted, or handed to bad()). */
#define DONE 0
/* A record was appended. */
#define EMIT 1
#define FAIL -1

/* cache[key] as a new reference; on a miss, what miss(arg, key) returns (miss(key) without an
 * arg), which is expected to have stored it. NULL on error. */
static PyObject *cached(PyObject *cache, PyObject *key, PyObject *miss, PyObject *arg) {
    PyObject *found = PyDict_GetItemWithError(cache, key);  /* borrowed */
    if (found != NULL) return new_ref(found);
    if (PyErr_Occurred()) return NULL;
    return arg != NULL ? PyObject_CallFunctionObjArgs(miss, arg, key, NULL)
                       : PyObject_CallOneArg(miss, key);
}

#include "_scan_records.h"

/* One line: SLOW (Python's), DONE, EMIT or FAIL. */
static int one(Scanner *s, const Src *src, PyObject *out, long *counts) {
    Py_ssize_t n = src->len;
    const char *l = (const char *)PyUnicode_1BYTE_DATA(src->obj) + src->off;
    if (n == 0 || l[0] < '0') return SLOW;
    int classic = l[0] > '9';
    int want = classic ? 5 : 3;  /* fields before the text */
    const char *f[6], *fe[6];
    const char *p = l, *end = l + n;
    for (int i = 0; i < want; i++) {
        while (p < end && is_space((unsigned char)*p)) p++;
        if (p == end) return SLOW;  /* too few fields: Python calls it malformed */
        f[i] = p;
        while (p < end && !is_space((unsigned char)*p)) p++;
        fe[i] = p;
    }
    while (p < end && is_space((unsigned char)*p)) p++;
    const char *txt = p;  /* the text: empty when the line ends after the program */
    long kind;
    PyObject *info = program_info(s, f[want - 1], fe[want - 1] - f[want - 1], &kind);
    if (info == NULL) return FAIL;
    if (kind >= 0 && kind < NCOUNTS) {
        counts[kind]++;
        Py_DECREF(info);
        return DONE;
    }
    if ((kind != K_DELIVERY && kind != K_QMGR && kind != K_NOTIFY) || txt == end) {
        Py_DECREF(info);
        return SLOW;
    }
    double ts;
    int rc = stamp(s, src, l, n, classic, f[0], fe[0] - f[0], &ts);
    if (rc != EMIT) {
        Py_DECREF(info);
        return rc;
    }
    if (kind == K_NOTIFY) {
        Py_DECREF(info);
        if (find(txt, end - txt, " notification: ", 15) != NULL) return SLOW;
        counts[C_OTHER]++;
        return DONE;
    }
    int has_to = find(txt, end - txt, ": to=<", 6) != NULL;
    if (kind == K_QMGR && !has_to) {
        PyObject *host = NULL;
        if (find(txt, end - txt, ": from=<", 8) != NULL) {
            host = host_name(s, f[want - 2], fe[want - 2] - f[want - 2]);
            rc = host == NULL ? FAIL
                              : qmgr_from(s, out, ts, host, PyTuple_GET_ITEM(info, 0), txt, end,
                                          counts);
        } else {
            /* qid: removed */
            const char *q = queue_id(txt, end);
            if (q != NULL && starts(q, end, ": removed", 9) && only_newlines(q + 9, end)) {
                host = host_name(s, f[want - 2], fe[want - 2] - f[want - 2]);
                PyObject *rec =
                    host == NULL ? NULL
                                 : pack(5, new_ref(s->kinds[REMOVED]), PyFloat_FromDouble(ts),
                                        new_ref(host), new_ref(PyTuple_GET_ITEM(info, 0)),
                                        text(txt, q - txt));
                rc = rec == NULL ? FAIL : (PyList_Append(out, rec) < 0 ? FAIL : EMIT);
                Py_XDECREF(rec);
                if (rc == EMIT) counts[C_QUEUE]++;
            } else {
                counts[C_OTHER]++;
                rc = DONE;
            }
        }
        Py_XDECREF(host);
        Py_DECREF(info);
        return rc;
    }
    if (!has_to) {  /* TLS chatter, "host X said:", "connect to ...", warnings */
        Py_DECREF(info);
        counts[C_OTHER]++;
        return DONE;
    }
    if (kind == K_QMGR && find(txt, end - txt, ": from=<", 8) != NULL) {
        Py_DECREF(info);
        return SLOW;  /* both markers: Python's order of tests decides */
    }
    PyObject *host = host_name(s, f[want - 2], fe[want - 2] - f[want - 2]);
    if (host == NULL) {
        Py_DECREF(info);
        return FAIL;
    }
    rc = attempt(s, out, src, n, ts, host, info, txt, end, counts);
    Py_DECREF(host);
    Py_DECREF(info);
    return rc;
}

static int flush_counts(Scanner *s, long *counts) {
    for (int i = 0; i < NCOUNTS; i++) {
        if (!counts[i]) continue;
        PyObject *old = PyList_GET_ITEM(s->counts, i);
        PyObject *add = PyLong_FromLong(counts[i]);
        if (add == NULL) return -1;
        PyObject *sum = PyNumber_Add(old, add);
        Py_DECREF(add);
        if (sum == NULL) return -1;
        PyList_SetItem(s->counts, i, sum);  /* steals sum, releases old */
        counts[i] = 0;
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(lines, start) -> (records, stop)\n\n"
"Read lines[start:] until a line only the Python loop can read; return the records of the lines\n"
"before it and its index (len(lines) when every line was read).");

static PyObject *Scanner_scan(Scanner *s, PyObject *args) {
    PyObject *lines;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &lines, &start)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    long counts[NCOUNTS] = {0};
    Py_ssize_t n = PyList_GET_SIZE(lines), i = start < 0 ? 0 : start;
    for (; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyUnicode_Check(line) || !PyUnicode_IS_ASCII(line)) break;  /* Python's */
        Py_INCREF(line);
        Src src = {line, 0, PyUnicode_GET_LENGTH(line)};
        int rc = one(s, &src, out, counts);
        Py_DECREF(line);
        if (rc == FAIL) {
            flush_counts(s, counts);
            Py_DECREF(out);
            return NULL;
        }
        if (rc == SLOW) break;
    }
    if (flush_counts(s, counts) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return Py_BuildValue("(Nn)", out, i);
}

PyDoc_STRVAR(scan_text_doc,
"scan_text(text, pos) -> (records, pos, line)\n\n"
"Read the lines of an ASCII block (whole lines, as str.splitlines(keepends=True) cuts them)\n"
"from pos until a line only the Python loop can read: that line, and the position after it;\n"
"line is None when the block was read to its end. No str is made of a line that needs none.");

static PyObject *Scanner_scan_text(Scanner *s, PyObject *args) {
    PyObject *block;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "Un", &block, &pos)) return NULL;
    if (!PyUnicode_IS_ASCII(block)) {
        PyErr_SetString(PyExc_ValueError, "scan_text reads ASCII text only");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    long counts[NCOUNTS] = {0};
    const char *base = (const char *)PyUnicode_1BYTE_DATA(block);
    Py_ssize_t size = PyUnicode_GET_LENGTH(block);
    if (pos < 0) pos = 0;
    PyObject *slow = NULL;
    while (pos < size) {
        Py_ssize_t e = pos;
        while (e < size && !LINE_END[(unsigned char)base[e]]) e++;
        if (e < size) e += (base[e] == '\r' && e + 1 < size && base[e + 1] == '\n') ? 2 : 1;
        Src src = {block, pos, e - pos};
        int rc = one(s, &src, out, counts);
        if (rc == FAIL) {
            flush_counts(s, counts);
            Py_DECREF(out);
            return NULL;
        }
        if (rc == SLOW) {
            slow = PyUnicode_Substring(block, pos, e);
            if (slow == NULL) {
                flush_counts(s, counts);
                Py_DECREF(out);
                return NULL;
            }
            pos = e;
            break;
        }
        pos = e;
    }
    if (flush_counts(s, counts) < 0) {
        Py_XDECREF(slow);
        Py_DECREF(out);
        return NULL;
    }
    if (slow == NULL) slow = new_ref(Py_None);
    return pack(3, out, PyLong_FromSsize_t(pos), slow);
}

PyDoc_STRVAR(forget_doc, "forget()\n\nDrop the remembered stamp (after the Python loop read a line).");

static PyObject *Scanner_forget(Scanner *s, PyObject *Py_UNUSED(ignored)) {
    s->have_last = s->have_minute = 0;
    Py_RETURN_NONE;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, scan_doc},
    {"scan_text", (PyCFunction)Scanner_scan_text, METH_VARARGS, scan_text_doc},
    {"forget", (PyCFunction)Scanner_forget, METH_NOARGS, forget_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inboxops.reputation._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The common lines of a Postfix log, read as PostfixLogParser._loop reads them.",
    .tp_methods = Scanner_methods,
    .tp_init = (initproc)Scanner_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT, "_scan",
    "The Postfix log parser's hot loop in C (see inboxops.reputation.parse).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scan_module);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
