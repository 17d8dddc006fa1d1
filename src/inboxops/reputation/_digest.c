/*
 * inboxops.reputation._digest: the store's 64-bit keys, computed in C.
 *
 * Every stored delivery attempt carries three digests (its log line, its recipient and its
 * message: collect.digest64), and a big ingest computes them by the hundred thousand in its
 * reader processes. Through hashlib each costs a hash object, a bytes object and an int
 * conversion in Python; here it is one call. The value must equal the Python definition
 * exactly, for ever (stored keys are how a rerun recognises a line):
 *
 *     int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
 *                    "big", signed=True)
 *
 * BLAKE2b is written here from its specification (RFC 7693): unkeyed, an 8-byte digest. The
 * tests (tests/test_reputation_digest.py) hold it to hashlib on every length around the block
 * size and on random text, lone surrogates included, and collect.py uses it only when a probe
 * agrees.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 128
#define OUT_BYTES 8

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* The message word schedule of each of the twelve rounds (rounds 10 and 11 repeat 0 and 1). */
static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr(uint64_t x, unsigned n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load_le(const uint8_t *p) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

#define MIX(a, b, c, d, x, y)                                                                   \
    do {                                                                                        \
        v[a] = v[a] + v[b] + (x);                                                               \
        v[d] = rotr(v[d] ^ v[a], 32);                                                           \
        v[c] = v[c] + v[d];                                                                     \
        v[b] = rotr(v[b] ^ v[c], 24);                                                           \
        v[a] = v[a] + v[b] + (y);                                                               \
        v[d] = rotr(v[d] ^ v[a], 16);                                                           \
        v[c] = v[c] + v[d];                                                                     \
        v[b] = rotr(v[b] ^ v[c], 63);                                                           \
    } while (0)

#define ROUND(r)                                                                                \
    do {                                                                                        \
        MIX(0, 4, 8, 12, m[SIGMA[r][0]], m[SIGMA[r][1]]);                                       \
        MIX(1, 5, 9, 13, m[SIGMA[r][2]], m[SIGMA[r][3]]);                                       \
        MIX(2, 6, 10, 14, m[SIGMA[r][4]], m[SIGMA[r][5]]);                                      \
        MIX(3, 7, 11, 15, m[SIGMA[r][6]], m[SIGMA[r][7]]);                                      \
        MIX(0, 5, 10, 15, m[SIGMA[r][8]], m[SIGMA[r][9]]);                                      \
        MIX(1, 6, 11, 12, m[SIGMA[r][10]], m[SIGMA[r][11]]);                                    \
        MIX(2, 7, 8, 13, m[SIGMA[r][12]], m[SIGMA[r][13]]);                                     \
        MIX(3, 4, 9, 14, m[SIGMA[r][14]], m[SIGMA[r][15]]);                                     \
    } while (0)

/* One 128-byte block into the state; ``bytes`` counts the input up to and including it. */
static void compress(uint64_t h[8], const uint8_t block[BLOCK], uint64_t bytes, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load_le(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= bytes; /* the counter's high word stays 0: inputs are far below 2^64 bytes */
    if (last) v[14] = ~v[14];
    /* each round spelled out, so that every message index is a constant */
    ROUND(0);
    ROUND(1);
    ROUND(2);
    ROUND(3);
    ROUND(4);
    ROUND(5);
    ROUND(6);
    ROUND(7);
    ROUND(8);
    ROUND(9);
    ROUND(10);
    ROUND(11);
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* The first eight digest bytes (little-endian h[0]) read as a big-endian signed integer. */
static int64_t digest64(const uint8_t *data, size_t len) {
    uint64_t h[8];
    uint8_t last[BLOCK];
    uint64_t done = 0;
    memcpy(h, IV, sizeof h);
    h[0] ^= 0x01010000ULL ^ OUT_BYTES; /* depth 1, fanout 1, no key, 8-byte digest */
    while (len > BLOCK) {
        done += BLOCK;
        compress(h, data, done, 0);
        data += BLOCK;
        len -= BLOCK;
    }
    memset(last, 0, sizeof last);
    if (len) memcpy(last, data, len);
    done += len;
    compress(h, last, done, 1);
    uint64_t be = 0;
    for (int i = 0; i < OUT_BYTES; i++) be = (be << 8) | ((h[0] >> (8 * i)) & 0xff);
    return (int64_t)be;
}

static PyObject *py_digest64(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "digest64() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 != NULL) return PyLong_FromLongLong(digest64((const uint8_t *)utf8, (size_t)size));
    /* lone surrogates: encoded as Python's "surrogatepass" does */
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    if (encoded == NULL) return NULL;
    int64_t value =
        digest64((const uint8_t *)PyBytes_AS_STRING(encoded), (size_t)PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return PyLong_FromLongLong(value);
}

static PyMethodDef methods[] = {
    {"digest64", py_digest64, METH_O,
     "digest64(text) -> int: BLAKE2b-64 of the text's UTF-8 (surrogatepass), signed big-endian."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_digest", "The reputation store's 64-bit keys in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__digest(void) { return PyModule_Create(&module); }
