/* The records of _scan.c, built as parse.py's _loop builds them: an event line's timestamp
 * (through the clock's minute cache), qmgr's from= and expired lines, a delivery attempt, and
 * the caches of syslog names and hosts. Included once, by _scan.c, after the Scanner type and
 * its helpers: one translation unit, so the compiler can inline across both files.
 */
#ifndef INBOXOPS_SCAN_RECORDS_H
#define INBOXOPS_SCAN_RECORDS_H

/* The timestamp of an event line; SLOW, DONE (bad() called: no usable stamp), FAIL, or EMIT. */
static int stamp(Scanner *s, const Src *src, const char *l, Py_ssize_t n, int classic,
                 const char *f0, Py_ssize_t f0n, double *ts) {
    if (!classic) {
        PyObject *arg = text(f0, f0n);
        if (arg == NULL) return FAIL;
        PyObject *r = PyObject_CallOneArg(s->iso, arg);
        Py_DECREF(arg);
        if (r == NULL) return FAIL;
        if (r == Py_None) {
            Py_DECREF(r);
            return call_bad(s, src) < 0 ? FAIL : DONE;
        }
        *ts = PyFloat_AsDouble(r);
        Py_DECREF(r);
        return (*ts == -1.0 && PyErr_Occurred()) ? FAIL : EMIT;
    }
    if (n < 15) return SLOW;
    if (s->have_last && memcmp(l, s->last_stamp, 15) == 0) {
        *ts = s->last_ts;
        return EMIT;
    }
    if (!is_digit(l[13]) || !is_digit(l[14])) return SLOW;
    int second = (l[13] - '0') * 10 + (l[14] - '0');
    if (second > 60) return SLOW;
    if (s->have_minute && memcmp(l, s->last_minute, 12) == 0) {
        *ts = s->minute_base + second;  /* what the clock's minute cache holds for it */
    } else {
        PyObject *key = text(l, 12);
        if (key == NULL) return FAIL;
        PyObject *base = PyDict_GetItemWithError(s->minutes, key);  /* borrowed */
        Py_DECREF(key);
        if (base != NULL) {
            *ts = PyFloat_AsDouble(base) + second;
            if (*ts == -1.0 && PyErr_Occurred()) return FAIL;
        } else {
            if (PyErr_Occurred()) return FAIL;
            PyObject *arg = text(l, 15);
            if (arg == NULL) return FAIL;
            PyObject *r = PyObject_CallOneArg(s->syslog, arg);
            Py_DECREF(arg);
            if (r == NULL) return FAIL;
            if (r == Py_None) {
                Py_DECREF(r);
                s->have_minute = 0;  /* the clock may have moved on */
                return call_bad(s, src) < 0 ? FAIL : DONE;
            }
            *ts = PyFloat_AsDouble(r);
            Py_DECREF(r);
            if (*ts == -1.0 && PyErr_Occurred()) return FAIL;
        }
        /* Only the clock's syslog() changes what a minute reads as, and only for the minute it
         * is asked about: this one, from now on. */
        memcpy(s->last_minute, l, 12);
        s->minute_base = *ts - second;
        s->have_minute = 1;
    }
    memcpy(s->last_stamp, l, 15);
    s->last_ts = *ts;
    s->have_last = 1;
    return EMIT;
}

/* qid: from=<sender>, size=N, nrcpt=N (queue active) | qid: from=<sender>, status=expired, ... */
static int qmgr_from(Scanner *s, PyObject *out, double ts, PyObject *host, PyObject *name,
                     const char *p, const char *end, long *counts) {
    const char *q = queue_id(p, end);
    if (q == NULL || !starts(q, end, ": from=<", 8)) return SLOW;
    const char *sender = q + 8;
    Py_ssize_t sender_n;
    const char *r = angled(sender, end, &sender_n);
    if (r == NULL) return SLOW;
    PyObject *rec;
    if (starts(r, end, "size=", 5)) {
        const char *size = r + 5, *e = size;
        while (e < end && is_digit(*e)) e++;
        if (e == size || e - size > 18 || !starts(e, end, ", nrcpt=", 8)) return SLOW;
        const char *nrcpt = e + 8, *e2 = nrcpt;
        while (e2 < end && is_digit(*e2)) e2++;
        if (e2 == nrcpt || e2 - nrcpt > 18 || !starts(e2, end, " (queue active)", 15) ||
            !only_newlines(e2 + 15, end))
            return SLOW;
        long long a = 0, b = 0;
        for (const char *c = size; c < e; c++) a = a * 10 + (*c - '0');
        for (const char *c = nrcpt; c < e2; c++) b = b * 10 + (*c - '0');
        rec = pack(8, new_ref(s->kinds[MESSAGE_FROM]), PyFloat_FromDouble(ts), new_ref(host),
                   new_ref(name), text(p, q - p), text(sender, sender_n),
                   PyLong_FromLongLong(a), PyLong_FromLongLong(b));
    } else if (starts(r, end, "status=expired, returned to sender", 34) &&
               only_newlines(r + 34, end)) {
        rec = pack(6, new_ref(s->kinds[EXPIRED]), PyFloat_FromDouble(ts), new_ref(host),
                   new_ref(name), text(p, q - p), text(sender, sender_n));
    } else {
        return SLOW;
    }
    if (rec == NULL) return FAIL;
    int rc = PyList_Append(out, rec);
    Py_DECREF(rec);
    counts[C_QUEUE]++;
    return rc < 0 ? FAIL : EMIT;
}

static int attempt(Scanner *s, PyObject *out, const Src *src, Py_ssize_t n, double ts, PyObject *host, PyObject *info, const char *p, const char *end,
                   long *counts) {
    Delivery d;
    if (!delivery(p, end, &d)) return SLOW;
    /* the reply runs to the closing parenthesis at the very end of the line */
    int cut;
    if (end - p >= 2 && end[-2] == ')' && end[-1] == '\n')
        cut = 2;
    else if (end - p >= 1 && end[-1] == ')')
        cut = 1;
    else if (end - p >= 3 && end[-3] == ')' && end[-2] == '\r' && end[-1] == '\n')
        cut = 3;
    else
        return SLOW;
    PyObject *state;
    if (d.status_n == 4 && memcmp(d.status, "sent", 4) == 0)
        state = s->sent;
    else if (d.status_n == 8 && memcmp(d.status, "deferred", 8) == 0)
        state = s->deferred;
    else if (d.status_n == 7 && memcmp(d.status, "bounced", 7) == 0)
        state = s->bounced;
    else if (d.status_n == 10 && memcmp(d.status, "SOFTBOUNCE", 10) == 0)
        state = s->deferred;  /* soft_bounce=yes: the mail stays queued */
    else {
        counts[C_OTHER]++;  /* address verification probes: deliverable/undeliverable */
        return DONE;
    }
    PyObject *relay_text = text(d.relay, d.relay_n);
    if (relay_text == NULL) return FAIL;
    PyObject *where = cached(s->relays, relay_text, s->relay, s->relays);
    Py_DECREF(relay_text);
    if (where == NULL) return FAIL;
    if (where == s->bad_relay || !PyTuple_Check(where) || PyTuple_GET_SIZE(where) != 3) {
        Py_DECREF(where);
        return SLOW;  /* Python counts it malformed, with its sample */
    }
    Py_ssize_t reply_n = (end - cut) - d.after;
    if (reply_n < 0) {
        Py_DECREF(where);
        return SLOW;
    }
    if (reply_n > MAX_REPLY) reply_n = MAX_REPLY;
    PyObject *reply = text(d.after, reply_n);
    PyObject *dsn = text(d.dsn, d.dsn_n);
    PyObject *rcpt = PyUnicode_New(d.rcpt_n, 127);
    if (reply == NULL || dsn == NULL || rcpt == NULL) goto fail;
    Py_UCS1 *low = PyUnicode_1BYTE_DATA(rcpt);
    Py_ssize_t at = -1;
    for (Py_ssize_t i = 0; i < d.rcpt_n; i++) {
        char c = d.rcpt[i];
        low[i] = (Py_UCS1)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        if (c == '@') at = i;
    }
    PyObject *reason;
    if (state == s->sent) {
        reason = s->accepted;
        Py_INCREF(reason);
    } else {
        reason = PyObject_CallFunctionObjArgs(s->classify, state, dsn, reply, NULL);
        if (reason == NULL) goto fail;
    }
    PyObject *domain = at >= 0 ? PyUnicode_Substring(rcpt, at + 1, d.rcpt_n) : text("", 0);
    PyObject *orig;
    if (d.orig != NULL) {
        orig = text(d.orig, d.orig_n);
    } else {
        orig = Py_None;
        Py_INCREF(orig);
    }
    PyObject *trimmed = src_line(src, cut > 1 ? n + 1 - cut : n);
    PyObject *rec = NULL;
    if (domain != NULL && orig != NULL && trimmed != NULL) {
        rec = PyTuple_New(17);
        if (rec != NULL) {
            PyObject *name = PyTuple_GET_ITEM(info, 0), *service = PyTuple_GET_ITEM(info, 1);
            PyObject *ts_obj = PyFloat_FromDouble(ts);
            PyObject *qid = text(d.qid, d.qid_n);
            if (ts_obj == NULL || qid == NULL) {
                Py_XDECREF(ts_obj);
                Py_XDECREF(qid);
                Py_CLEAR(rec);
            } else {
                Py_INCREF(s->kinds[ATTEMPT]); Py_INCREF(host); Py_INCREF(name);
                Py_INCREF(service); Py_INCREF(state);
                PyObject *items[17] = {s->kinds[ATTEMPT], ts_obj, host, name, service, qid, rcpt,
                                       domain, orig, PyTuple_GET_ITEM(where, 0),
                                       PyTuple_GET_ITEM(where, 1), PyTuple_GET_ITEM(where, 2),
                                       dsn, state, reply, reason, trimmed};
                Py_INCREF(items[9]); Py_INCREF(items[10]); Py_INCREF(items[11]);
                for (int i = 0; i < 17; i++) PyTuple_SET_ITEM(rec, i, items[i]);
                rcpt = dsn = reply = reason = domain = orig = trimmed = NULL;  /* owned by rec */
            }
        }
    }
    Py_XDECREF(domain); Py_XDECREF(orig); Py_XDECREF(trimmed); Py_XDECREF(reason);
    Py_XDECREF(rcpt); Py_XDECREF(dsn); Py_XDECREF(reply);
    Py_DECREF(where);
    if (rec == NULL) return FAIL;
    int rc = PyList_Append(out, rec);
    Py_DECREF(rec);
    counts[C_ATTEMPTS]++;
    return rc < 0 ? FAIL : EMIT;
fail:
    Py_XDECREF(reply); Py_XDECREF(dsn); Py_XDECREF(rcpt);
    Py_DECREF(where);
    return FAIL;
}

/* The host field as a str (a new reference): the same object while the host stays the same. */
static PyObject *host_name(Scanner *s, const char *p, Py_ssize_t n) {
    if (s->host != NULL && s->last_host_n == n && memcmp(s->last_host, p, (size_t)n) == 0)
        return new_ref(s->host);
    PyObject *host = text(p, n);
    if (host != NULL && n <= (Py_ssize_t)sizeof(s->last_host)) {
        Py_XSETREF(s->host, new_ref(host));
        memcpy(s->last_host, p, (size_t)n);
        s->last_host_n = n;
    }
    return host;
}

/* The (name, service, kind) of a program token, a new reference; NULL on error. */
static PyObject *program_info(Scanner *s, const char *p, Py_ssize_t n, long *kind) {
    Program *slot = NULL;
    if (n <= PROGRAM_MAX) {
        unsigned int h = 2166136261u;
        for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
        slot = &s->programs[h % PROGRAMS];
        if (slot->info != NULL && slot->len == n && memcmp(slot->key, p, (size_t)n) == 0) {
            *kind = slot->kind;
            Py_INCREF(slot->info);
            return slot->info;
        }
    }
    PyObject *program = text(p, n);
    if (program == NULL) return NULL;
    PyObject *info = cached(s->names, program, s->learn, NULL);
    Py_DECREF(program);
    if (info == NULL) return NULL;
    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 3) {
        Py_DECREF(info);
        PyErr_SetString(PyExc_TypeError, "a syslog name's info must be (name, service, kind)");
        return NULL;
    }
    *kind = PyLong_AsLong(PyTuple_GET_ITEM(info, 2));
    if (*kind == -1 && PyErr_Occurred()) {
        Py_DECREF(info);
        return NULL;
    }
    if (slot != NULL) {
        Py_INCREF(info);
        Py_XSETREF(slot->info, info);
        slot->len = n;
        memcpy(slot->key, p, (size_t)n);
        slot->kind = *kind;
    }
    return info;
}

#endif
