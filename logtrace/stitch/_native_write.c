/* The JSON-lines writer's per-line work in C.
 *
 * Python keeps what is rare or per distinct value (JSON-escaping the few
 * records that are not JSON, timestamps numpy would print oddly); this module
 * does what runs once per output line: it joins a row's IDs, service, depth,
 * timestamp, clock offset, file, line number and original text into one JSON
 * line, the same bytes as logtrace.stitch._render_jsonl's pure-Python path.
 *
 * Every index, offset and length is checked: bad input raises a Python
 * exception, it never reads or writes out of bounds.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Microseconds since the epoch of 0001-01-01 and 10000-01-01: the years
 * numpy prints with four digits and no sign. */
#define US_LO (-62135596800000000LL)
#define US_HI (253402300800000000LL)
#define US_PER_DAY 86400000000LL

enum {
    C_TRACE, C_SPAN, C_PARENT, C_SERVICE, C_DEPTH, C_STAMP, C_OFFSET,
    C_FILE, C_LINE, C_START, C_LENGTH, C_REASON, N_COLUMNS
};

static const struct {
    const char *name;
    char kind; /* 'i' signed integer, 'u' unsigned integer, 'f' float */
    Py_ssize_t itemsize;
} COLUMN_TYPES[N_COLUMNS] = {
    {"trace", 'i', 4}, {"span", 'i', 4}, {"parent", 'i', 4},
    {"service", 'u', 2}, {"depth", 'i', 4}, {"stamp_us", 'i', 8},
    {"offset_ms", 'f', 8}, {"file", 'i', 4}, {"line", 'i', 4},
    {"start", 'i', 8}, {"length", 'i', 4}, {"reason", 'u', 1},
};

typedef struct {
    Py_buffer view;
    const char *data;
    Py_ssize_t stride;
    Py_ssize_t n;
    int held;
} Column;

/* Accept a one-dimensional buffer (any stride) of exactly the given type. */
static int
column_open(PyObject *obj, Column *col, const char *name, char kind, Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(obj, &col->view, PyBUF_RECORDS_RO) < 0) {
        return -1;
    }
    col->held = 1;
    Py_buffer *v = &col->view;
    if (v->ndim != 1 || v->shape == NULL || v->strides == NULL || v->suboffsets != NULL) {
        PyErr_Format(PyExc_ValueError, "column %s: expected a one-dimensional array", name);
        return -1;
    }
    const char *f = v->format != NULL ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') {
        f++;
    }
    int ok = 0;
    if (v->itemsize == itemsize && f[0] != '\0' && f[1] == '\0') {
        if (kind == 'f') {
            ok = f[0] == 'd';
        }
        else if (kind == 'i') {
            ok = strchr("bhilq", f[0]) != NULL;
        }
        else {
            ok = strchr("BHILQ", f[0]) != NULL;
        }
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError,
                     "column %s: expected %s%zd-byte items, got format '%s' of %zd bytes",
                     name, kind == 'f' ? "float " : (kind == 'i' ? "signed " : "unsigned "),
                     itemsize, v->format != NULL ? v->format : "B", v->itemsize);
        return -1;
    }
    col->data = (const char *)v->buf;
    col->stride = v->strides[0];
    col->n = v->shape[0];
    return 0;
}

static void
column_close(Column *col)
{
    if (col->held) {
        PyBuffer_Release(&col->view);
        col->held = 0;
    }
}

static inline int32_t
get_i32(const Column *c, Py_ssize_t i)
{
    int32_t x;
    memcpy(&x, c->data + i * c->stride, sizeof x);
    return x;
}

static inline int64_t
get_i64(const Column *c, Py_ssize_t i)
{
    int64_t x;
    memcpy(&x, c->data + i * c->stride, sizeof x);
    return x;
}

static inline uint16_t
get_u16(const Column *c, Py_ssize_t i)
{
    uint16_t x;
    memcpy(&x, c->data + i * c->stride, sizeof x);
    return x;
}

static inline double
get_f64(const Column *c, Py_ssize_t i)
{
    double x;
    memcpy(&x, c->data + i * c->stride, sizeof x);
    return x;
}

static inline uint8_t
get_u8(const Column *c, Py_ssize_t i)
{
    return (uint8_t)c->data[i * c->stride];
}

/* ---- text pieces ------------------------------------------------------- */

static const char DIGITS2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Decimal text of v, as Python's str(int); returns its length (at most 20). */
static int
format_int(char *out, int64_t v)
{
    char tmp[24];
    int pos = 24;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        pos -= 2;
        memcpy(tmp + pos, DIGITS2 + 2 * r, 2);
    }
    if (u >= 10) {
        pos -= 2;
        memcpy(tmp + pos, DIGITS2 + 2 * u, 2);
    }
    else {
        tmp[--pos] = (char)('0' + u);
    }
    if (v < 0) {
        tmp[--pos] = '-';
    }
    memcpy(out, tmp + pos, (size_t)(24 - pos));
    return 24 - pos;
}

/* "YYYY-MM-DDT" for a day count since 1970-01-01 (proleptic Gregorian). */
static void
format_day(char *out, int64_t days)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    memcpy(out, DIGITS2 + 2 * (y / 100), 2);
    memcpy(out + 2, DIGITS2 + 2 * (y % 100), 2);
    out[4] = '-';
    memcpy(out + 5, DIGITS2 + 2 * m, 2);
    out[7] = '-';
    memcpy(out + 8, DIGITS2 + 2 * d, 2);
    out[10] = 'T';
}

/* Length of a quoted timestamp: "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
#define STAMP_LEN 29

typedef struct {
    int64_t day;
    char text[11];
} DayCache;

/* us must lie in [US_LO, US_HI). */
static void
format_stamp(char *out, int64_t us, DayCache *cache)
{
    int64_t day = us / US_PER_DAY;
    int64_t rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        day -= 1;
    }
    if (day != cache->day) {
        format_day(cache->text, day);
        cache->day = day;
    }
    out[0] = '"';
    memcpy(out + 1, cache->text, 11);
    int64_t secs = rem / 1000000;
    int64_t frac = rem % 1000000;
    memcpy(out + 12, DIGITS2 + 2 * (secs / 3600), 2);
    out[14] = ':';
    memcpy(out + 15, DIGITS2 + 2 * ((secs / 60) % 60), 2);
    out[17] = ':';
    memcpy(out + 18, DIGITS2 + 2 * (secs % 60), 2);
    out[20] = '.';
    memcpy(out + 21, DIGITS2 + 2 * (frac / 10000), 2);
    memcpy(out + 23, DIGITS2 + 2 * ((frac / 100) % 100), 2);
    memcpy(out + 25, DIGITS2 + 2 * (frac % 100), 2);
    out[27] = 'Z';
    out[28] = '"';
}

/* ---- the GIL --------------------------------------------------------------
 *
 * The row loop runs without the GIL: a batch takes milliseconds, and other
 * threads of the process (a progress display, an application embedding the
 * stitcher) keep running. Without it the loop reads only objects that cannot
 * change under it: tuples of str and bytes, and buffers it holds exports of.
 * Anything that needs the interpreter (an error, a non-ASCII ID, growing the
 * output, opening a source) takes the GIL back first. */

typedef struct {
    PyThreadState *saved; /* NULL while this thread holds the GIL */
} Gil;

static inline void
gil_hold(Gil *g)
{
    if (g->saved != NULL) {
        PyEval_RestoreThread(g->saved);
        g->saved = NULL;
    }
}

static inline void
gil_drop(Gil *g)
{
    if (g->saved == NULL) {
        g->saved = PyEval_SaveThread();
    }
}

/* repr() of each row's clock offset. Offsets take few distinct values (one
 * per file, or a slow drift), so each distinct value is printed once, with
 * the GIL, before the row loop; rows keep where their text is. */

typedef struct {
    uint64_t bits;
    int32_t at; /* text's position in the arena, -1 for an empty slot */
    int32_t len;
} OffsetEntry;

typedef struct {
    OffsetEntry *slots;
    size_t mask;
    size_t used;
    char *arena;
    size_t arena_len, arena_cap;
    int32_t *row_at;
    uint8_t *row_len;
} Offsets;

static void
offsets_free(Offsets *o)
{
    PyMem_Free(o->slots);
    PyMem_Free(o->arena);
    PyMem_Free(o->row_at);
    PyMem_Free(o->row_len);
    memset(o, 0, sizeof *o);
}

static OffsetEntry *
offsets_slot(Offsets *o, uint64_t bits)
{
    size_t h = (size_t)((bits ^ (bits >> 31)) * 0x9E3779B97F4A7C15ULL);
    for (size_t k = h & o->mask;; k = (k + 1) & o->mask) {
        if (o->slots[k].at < 0 || o->slots[k].bits == bits) {
            return &o->slots[k];
        }
    }
}

static int
offsets_grow(Offsets *o)
{
    OffsetEntry *old = o->slots;
    size_t old_size = old ? o->mask + 1 : 0;
    size_t size = old_size ? old_size * 2 : 64;
    o->slots = PyMem_Malloc(size * sizeof(OffsetEntry));
    if (o->slots == NULL) {
        o->slots = old;
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < size; k++) {
        o->slots[k].at = -1;
    }
    o->mask = size - 1;
    for (size_t k = 0; k < old_size; k++) {
        if (old[k].at >= 0) {
            *offsets_slot(o, old[k].bits) = old[k];
        }
    }
    PyMem_Free(old);
    return 0;
}

static int
offsets_add_text(Offsets *o, const char *text, size_t len, int32_t *at)
{
    if (o->arena_len + len > o->arena_cap) {
        size_t cap = o->arena_cap * 2 + len + 256;
        if (cap > INT32_MAX) {
            PyErr_NoMemory();
            return -1;
        }
        char *arena = PyMem_Realloc(o->arena, cap);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        o->arena = arena;
        o->arena_cap = cap;
    }
    memcpy(o->arena + o->arena_len, text, len);
    *at = (int32_t)o->arena_len;
    o->arena_len += len;
    return 0;
}

/* With the GIL: the text of every row's offset (NaN prints as null). */
static int
offsets_build(Offsets *o, const Column *col, Py_ssize_t n)
{
    o->row_at = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    o->row_len = PyMem_Malloc((size_t)(n ? n : 1));
    int32_t null_at;
    if (o->row_at == NULL || o->row_len == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (offsets_grow(o) < 0 || offsets_add_text(o, "null", 4, &null_at) < 0) {
        return -1;
    }
    uint64_t last_bits = 0;
    int32_t last_at = -1, last_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = get_f64(col, i);
        if (v != v) {
            o->row_at[i] = null_at;
            o->row_len[i] = 4;
            continue;
        }
        v = v + 0.0; /* -0.0 prints as 0.0, as the pure-Python path does */
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        if (last_at < 0 || bits != last_bits) {
            OffsetEntry *e = offsets_slot(o, bits);
            if (e->at < 0) {
                char *r = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
                if (r == NULL) {
                    return -1;
                }
                size_t len = strlen(r);
                int32_t at;
                int failed = len > 64 || offsets_add_text(o, r, len, &at) < 0;
                PyMem_Free(r);
                if (failed) {
                    if (!PyErr_Occurred()) {
                        PyErr_SetString(PyExc_ValueError, "offset_ms: float text too long");
                    }
                    return -1;
                }
                e->bits = bits;
                e->at = at;
                e->len = (int32_t)len;
                if (++o->used * 2 > o->mask) {
                    if (offsets_grow(o) < 0) {
                        return -1;
                    }
                    e = offsets_slot(o, bits);
                }
            }
            last_bits = bits;
            last_at = e->at;
            last_len = e->len;
        }
        o->row_at[i] = last_at;
        o->row_len[i] = (uint8_t)last_len;
    }
    return 0;
}

/* ---- tuple items ------------------------------------------------------- */

static int
bytes_item(Gil *g, PyObject *tuple, Py_ssize_t k, const char *what, const char **text,
           Py_ssize_t *len)
{
    if (k < 0 || k >= PyTuple_GET_SIZE(tuple)) {
        gil_hold(g);
        PyErr_Format(PyExc_IndexError, "%s index %zd out of range (%zd entries)", what, k,
                     PyTuple_GET_SIZE(tuple));
        return -1;
    }
    PyObject *item = PyTuple_GET_ITEM(tuple, k);
    if (!PyBytes_Check(item)) {
        gil_hold(g);
        PyErr_Format(PyExc_TypeError, "%s[%zd] must be bytes, not %.100s", what, k,
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    *text = PyBytes_AS_STRING(item);
    *len = PyBytes_GET_SIZE(item);
    return 0;
}

/* An ID: null for a negative index, else the tuple's string, quoted. */
static int
id_item(Gil *g, PyObject *tuple, int32_t k, const char *what, const char **text,
        Py_ssize_t *len)
{
    if (k < 0) {
        *text = NULL;
        *len = 4;
        return 0;
    }
    if (k >= PyTuple_GET_SIZE(tuple)) {
        gil_hold(g);
        PyErr_Format(PyExc_IndexError, "%s index %d out of range (%zd entries)", what, (int)k,
                     PyTuple_GET_SIZE(tuple));
        return -1;
    }
    PyObject *item = PyTuple_GET_ITEM(tuple, k);
    if (!PyUnicode_Check(item)) {
        gil_hold(g);
        PyErr_Format(PyExc_TypeError, "%s[%d] must be str, not %.100s", what, (int)k,
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    if (PyUnicode_IS_COMPACT_ASCII(item)) {
        /* Hex IDs, nearly always: the characters are the UTF-8 bytes. */
        *text = (const char *)PyUnicode_DATA(item);
        *len = PyUnicode_GET_LENGTH(item) + 2;
        return 0;
    }
    int was_free = g->saved != NULL;
    gil_hold(g);
    *text = PyUnicode_AsUTF8AndSize(item, len); /* cached in the str object */
    if (*text == NULL) {
        return -1;
    }
    *len += 2;
    if (was_free) {
        gil_drop(g);
    }
    return 0;
}

static inline char *
put(char *p, const char *s, Py_ssize_t n)
{
    memcpy(p, s, (size_t)n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static char *
put_id(char *p, const char *text, Py_ssize_t len)
{
    if (text == NULL) {
        return PUT_LIT(p, "null");
    }
    *p++ = '"';
    p = put(p, text, len - 2);
    *p++ = '"';
    return p;
}

/* ---- sources: mapped files or file descriptors ------------------------- */

typedef struct {
    Py_buffer view;
    int state; /* 0 not looked at, 1 buffer held, 2 file descriptor */
    int fd;
} Source;

static int
source_open(PyObject *sources, Source *s, int32_t f)
{
    PyObject *item = PyList_GET_ITEM(sources, f);
    if (item == Py_None) {
        PyErr_Format(PyExc_ValueError, "file %d is not open", (int)f);
        return -1;
    }
    if (PyLong_Check(item)) {
        long fd = PyLong_AsLong(item);
        if (fd == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (fd < 0 || fd > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "file %d: bad file descriptor %ld", (int)f, fd);
            return -1;
        }
        s->fd = (int)fd;
        s->state = 2;
        return 0;
    }
    if (PyObject_GetBuffer(item, &s->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    s->state = 1;
    return 0;
}

static int
source_get(Gil *g, PyObject *sources, Source *src, Py_ssize_t n_sources, int32_t f,
           Source **out)
{
    if (f < 0 || f >= n_sources) {
        gil_hold(g);
        PyErr_Format(PyExc_IndexError, "file index %d out of range (%zd sources)", (int)f,
                     n_sources);
        return -1;
    }
    Source *s = &src[f];
    if (s->state == 0) {
        int was_free = g->saved != NULL;
        gil_hold(g);
        /* The list may have changed while the GIL was free: look again. */
        if (f >= PyList_GET_SIZE(sources)) {
            PyErr_Format(PyExc_IndexError, "file index %d out of range", (int)f);
            return -1;
        }
        if (source_open(sources, s, f) < 0) {
            return -1;
        }
        if (was_free) {
            gil_drop(g);
        }
    }
    *out = s;
    return 0;
}

/* ---- the output: a bytearray the caller keeps between batches ------------
 *
 * An export of it is held while the GIL is free, so no other thread can
 * resize or free its memory under the loop. */

typedef struct {
    PyObject *array;
    Py_buffer view;
    int held;
    Py_ssize_t pos;
} Out;

static int
out_open(Out *o)
{
    if (PyObject_GetBuffer(o->array, &o->view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    o->held = 1;
    return 0;
}

static void
out_close(Out *o)
{
    if (o->held) {
        PyBuffer_Release(&o->view);
        o->held = 0;
    }
}

static int
out_reserve(Gil *g, Out *o, Py_ssize_t need)
{
    Py_ssize_t cap = o->view.len;
    if (o->pos + need <= cap) {
        return 0;
    }
    int was_free = g->saved != NULL;
    gil_hold(g);
    if (need < 0 || o->pos > PY_SSIZE_T_MAX - need) {
        PyErr_NoMemory();
        return -1;
    }
    while (cap < o->pos + need) {
        cap = cap > PY_SSIZE_T_MAX / 2 ? PY_SSIZE_T_MAX : cap * 2 + 4096;
    }
    out_close(o);
    if (PyByteArray_Resize(o->array, cap) < 0 || out_open(o) < 0) {
        return -1;
    }
    if (was_free) {
        gil_drop(g);
    }
    return 0;
}

/* Sorted row positions with a replacement text each. */
typedef struct {
    Column rows;
    PyObject *texts;
    Py_ssize_t next; /* index of the next override */
    Py_ssize_t at;   /* its row, or -1 when none is left */
} Overrides;

static int
overrides_open(Overrides *ov, PyObject *rows, PyObject *texts, const char *name, Py_ssize_t n)
{
    if (column_open(rows, &ov->rows, name, 'i', 8) < 0) {
        return -1;
    }
    if (PyTuple_GET_SIZE(texts) != ov->rows.n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd rows but %zd texts", name, ov->rows.n,
                     PyTuple_GET_SIZE(texts));
        return -1;
    }
    int64_t last = -1;
    for (Py_ssize_t k = 0; k < ov->rows.n; k++) {
        int64_t r = get_i64(&ov->rows, k);
        if (r <= last || r >= n) {
            PyErr_Format(PyExc_ValueError,
                         "%s: rows must increase strictly and lie in 0..%zd", name, n - 1);
            return -1;
        }
        last = r;
    }
    ov->texts = texts;
    ov->next = 0;
    ov->at = ov->rows.n ? (Py_ssize_t)get_i64(&ov->rows, 0) : -1;
    return 0;
}

/* The override text for row i, if any (text is NULL otherwise). */
static int
overrides_take(Gil *g, Overrides *ov, Py_ssize_t i, const char *what, const char **text,
               Py_ssize_t *len)
{
    if (ov->at != i) {
        *text = NULL;
        return 0;
    }
    if (bytes_item(g, ov->texts, ov->next, what, text, len) < 0) {
        return -1;
    }
    ov->next++;
    ov->at = ov->next < ov->rows.n ? (Py_ssize_t)get_i64(&ov->rows, ov->next) : -1;
    return 0;
}

/* ---- render_batch -------------------------------------------------------- */

#define LIT_TRACE "{\"trace_id\":"
#define LIT_SPAN ",\"span_id\":"
#define LIT_PARENT ",\"parent_span_id\":"
#define LIT_SERVICE ",\"service\":"
#define LIT_DEPTH ",\"depth\":"
#define LIT_STAMP ",\"timestamp\":"
#define LIT_OFFSET ",\"offset_ms\":"
#define LIT_FILE ",\"file\":"
#define LIT_LINE ",\"line\":"
#define LIT_RECORD ",\"record\":"
#define LITS_LEN                                                                           \
    (sizeof(LIT_TRACE LIT_SPAN LIT_PARENT LIT_SERVICE LIT_DEPTH LIT_STAMP LIT_OFFSET       \
                LIT_FILE LIT_LINE LIT_RECORD) -                                            \
     1)

/* pread until len bytes or the end of the file; -1 with errno set on error. */
static Py_ssize_t
read_at(int fd, char *dst, int64_t len, int64_t start)
{
    int64_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, dst + done, (size_t)(len - done), (off_t)(start + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            break;
        }
        done += r;
    }
    return (Py_ssize_t)done;
}

static PyObject *
render_batch(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"out", "columns", "traces", "spans", "services", "files",
                               "tails", "sources", "stamp_rows", "stamp_texts",
                               "record_rows", "record_texts", NULL};
    PyObject *array, *columns, *traces, *spans, *services, *files, *tails, *sources;
    PyObject *stamp_rows, *stamp_texts, *record_rows, *record_texts;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O!O!O!O!O!O!O!O!OO!OO!:render_batch", keywords, &PyByteArray_Type,
            &array, &PyTuple_Type, &columns, &PyTuple_Type, &traces, &PyTuple_Type, &spans,
            &PyTuple_Type, &services, &PyTuple_Type, &files, &PyTuple_Type, &tails,
            &PyList_Type, &sources, &stamp_rows, &PyTuple_Type, &stamp_texts, &record_rows,
            &PyTuple_Type, &record_texts)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "columns: expected %d arrays, got %zd", N_COLUMNS,
                     PyTuple_GET_SIZE(columns));
        return NULL;
    }

    PyObject *result = NULL;
    Gil gil = {NULL};
    Column col[N_COLUMNS];
    memset(col, 0, sizeof col);
    Overrides stamps, records;
    memset(&stamps, 0, sizeof stamps);
    memset(&records, 0, sizeof records);
    Py_ssize_t n_sources = PyList_GET_SIZE(sources);
    Source *src = NULL;
    Out out;
    memset(&out, 0, sizeof out);
    out.array = array;
    Py_ssize_t n = 0;
    DayCache days = {INT64_MIN, {0}};
    Offsets offs;
    memset(&offs, 0, sizeof offs);

    for (int c = 0; c < N_COLUMNS; c++) {
        if (column_open(PyTuple_GET_ITEM(columns, c), &col[c], COLUMN_TYPES[c].name,
                        COLUMN_TYPES[c].kind, COLUMN_TYPES[c].itemsize) < 0) {
            goto done;
        }
        if (c == 0) {
            n = col[c].n;
        }
        else if (col[c].n != n) {
            PyErr_Format(PyExc_ValueError, "column %s: %zd rows, expected %zd",
                         COLUMN_TYPES[c].name, col[c].n, n);
            goto done;
        }
    }
    if (overrides_open(&stamps, stamp_rows, stamp_texts, "stamp_rows", n) < 0 ||
        overrides_open(&records, record_rows, record_texts, "record_rows", n) < 0) {
        goto done;
    }
    src = PyMem_Calloc(n_sources ? (size_t)n_sources : 1, sizeof(Source));
    if (src == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (out_open(&out) < 0 || offsets_build(&offs, &col[C_OFFSET], n) < 0) {
        goto done;
    }
    /* Open the sources the rows read and make room for a typical batch, so
     * that the loop seldom needs the GIL. */
    Py_ssize_t guess = 4096;
    Py_ssize_t next_record = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (next_record < records.rows.n && get_i64(&records.rows, next_record) == i) {
            next_record++;
            continue;
        }
        Source *s;
        int32_t len = get_i32(&col[C_LENGTH], i);
        if (source_get(&gil, sources, src, n_sources, get_i32(&col[C_FILE], i), &s) < 0) {
            goto done;
        }
        if (len > 0 && guess < PY_SSIZE_T_MAX / 4) {
            guess += len + 320;
        }
    }
    if (out_reserve(&gil, &out, guess) < 0) {
        goto done;
    }

    gil_drop(&gil);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *t_text, *s_text, *p_text, *svc_text, *file_text, *tail_text;
        const char *stamp_text, *off_text, *rec_text;
        Py_ssize_t t_len, s_len, p_len, svc_len, file_len, tail_len, stamp_len, off_len;
        Py_ssize_t rec_len = 0;
        int64_t us = 0, start = 0;
        Source *s = NULL;

        if (id_item(&gil, traces, get_i32(&col[C_TRACE], i), "trace", &t_text, &t_len) < 0 ||
            id_item(&gil, spans, get_i32(&col[C_SPAN], i), "span", &s_text, &s_len) < 0 ||
            id_item(&gil, spans, get_i32(&col[C_PARENT], i), "parent span", &p_text,
                    &p_len) < 0 ||
            bytes_item(&gil, services, get_u16(&col[C_SERVICE], i), "service", &svc_text,
                       &svc_len) < 0 ||
            bytes_item(&gil, tails, get_u8(&col[C_REASON], i), "reason", &tail_text,
                       &tail_len) < 0 ||
            bytes_item(&gil, files, get_i32(&col[C_FILE], i), "file", &file_text,
                       &file_len) < 0) {
            goto done;
        }
        int32_t f = get_i32(&col[C_FILE], i);
        if (overrides_take(&gil, &stamps, i, "stamp_texts", &stamp_text, &stamp_len) < 0) {
            goto done;
        }
        if (stamp_text == NULL) {
            us = get_i64(&col[C_STAMP], i);
            if (us < US_LO || us >= US_HI) {
                gil_hold(&gil);
                PyErr_Format(PyExc_ValueError,
                             "row %zd: timestamp %lld us is outside years 1..9999 and has "
                             "no text of its own",
                             i, (long long)us);
                goto done;
            }
            stamp_len = STAMP_LEN;
        }
        off_text = offs.arena + offs.row_at[i];
        off_len = offs.row_len[i];
        if (overrides_take(&gil, &records, i, "record_texts", &rec_text, &rec_len) < 0) {
            goto done;
        }
        if (rec_text == NULL) {
            start = get_i64(&col[C_START], i);
            int32_t len = get_i32(&col[C_LENGTH], i);
            if (source_get(&gil, sources, src, n_sources, f, &s) < 0) {
                goto done;
            }
            if (start < 0 || len < 0 ||
                (s->state == 1 && (start > s->view.len || len > s->view.len - start)) ||
                (s->state == 2 && start > INT64_MAX - len)) {
                gil_hold(&gil);
                PyErr_Format(PyExc_ValueError,
                             "row %zd: line at offset %lld, %d bytes, is outside file %d", i,
                             (long long)start, (int)len, (int)f);
                goto done;
            }
            rec_len = len;
        }
        Py_ssize_t need = (Py_ssize_t)LITS_LEN + t_len + s_len + p_len + svc_len + 20 +
                          stamp_len + off_len + file_len + 20 + rec_len + tail_len;
        if (out_reserve(&gil, &out, need) < 0) {
            goto done;
        }
        char *base = (char *)out.view.buf;
        char *p = base + out.pos;
        p = PUT_LIT(p, LIT_TRACE);
        p = put_id(p, t_text, t_len);
        p = PUT_LIT(p, LIT_SPAN);
        p = put_id(p, s_text, s_len);
        p = PUT_LIT(p, LIT_PARENT);
        p = put_id(p, p_text, p_len);
        p = PUT_LIT(p, LIT_SERVICE);
        p = put(p, svc_text, svc_len);
        p = PUT_LIT(p, LIT_DEPTH);
        p += format_int(p, get_i32(&col[C_DEPTH], i));
        p = PUT_LIT(p, LIT_STAMP);
        if (stamp_text != NULL) {
            p = put(p, stamp_text, stamp_len);
        }
        else {
            format_stamp(p, us, &days);
            p += STAMP_LEN;
        }
        p = PUT_LIT(p, LIT_OFFSET);
        p = put(p, off_text, off_len);
        p = PUT_LIT(p, LIT_FILE);
        p = put(p, file_text, file_len);
        p = PUT_LIT(p, LIT_LINE);
        p += format_int(p, get_i32(&col[C_LINE], i));
        p = PUT_LIT(p, LIT_RECORD);
        if (rec_text != NULL) {
            p = put(p, rec_text, rec_len);
        }
        else if (s->state == 1) {
            p = put(p, (const char *)s->view.buf + start, rec_len);
        }
        else {
            Py_ssize_t got = read_at(s->fd, p, rec_len, start);
            if (got < 0) {
                int err = errno;
                gil_hold(&gil);
                errno = err;
                PyErr_SetFromErrno(PyExc_OSError);
                goto done;
            }
            p += got; /* a file cut short gives what is left, as os.pread does */
        }
        p = put(p, tail_text, tail_len);
        out.pos = p - base;
    }
    gil_hold(&gil);
    result = PyLong_FromSsize_t(out.pos);

done:
    gil_hold(&gil);
    out_close(&out);
    offsets_free(&offs);
    if (src != NULL) {
        for (Py_ssize_t k = 0; k < n_sources; k++) {
            if (src[k].state == 1) {
                PyBuffer_Release(&src[k].view);
            }
        }
        PyMem_Free(src);
    }
    column_close(&stamps.rows);
    column_close(&records.rows);
    for (int c = 0; c < N_COLUMNS; c++) {
        column_close(&col[c]);
    }
    return result;
}

PyDoc_STRVAR(render_batch_doc,
"render_batch(out, columns, traces, spans, services, files, tails, sources,\n"
"             stamp_rows, stamp_texts, record_rows, record_texts) -> int\n"
"\n"
"Write one JSON line per row at the start of the bytearray out, growing it\n"
"as needed (never shrinking it); return how many bytes were written.\n"
"columns holds twelve equal-length arrays: trace, span, parent (int32, -1\n"
"for none), service (uint16), depth (int32), timestamp in microseconds\n"
"(int64), offset_ms (float64, NaN for null), file (int32), line (int32),\n"
"byte offset (int64), length (int32), reason (uint8). traces and spans are\n"
"tuples of the ID strings; services, files and tails (per reason) tuples of\n"
"JSON-ready bytes; sources a list with, per file, a buffer to slice lines\n"
"from or a file descriptor to pread them. stamp_rows/stamp_texts and\n"
"record_rows/record_texts give, for increasing rows, the timestamp and\n"
"record texts to write instead. The rows are rendered without the GIL.");

static PyMethodDef methods[] = {
    {"render_batch", (PyCFunction)(void (*)(void))render_batch, METH_VARARGS | METH_KEYWORDS,
     render_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "logtrace.stitch._native_write",
    "The JSON-lines writer's per-line work, in C.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__native_write(void)
{
    return PyModule_Create(&module);
}
