/*
 * The scan stage's per-line work in C, for JSON records in any of the
 * conventions the Python parser reads (logtrace's own, structlog,
 * python-json-logger, ECS nested or dotted, OpenTelemetry, Datadog, zap,
 * logrus, pino), whatever the order of their keys.
 *
 * A Scanner walks a block of whole lines, splits it at newlines and, for each
 * line that is one strictly valid ASCII JSON object whose fields it reads
 * exactly as _parse.py does (key names, precedence, ID spellings, timestamp
 * forms), writes a finished row (IDs interned, timestamps converted). So it
 * does for a whole line a container runtime wrapped (CRI, Docker json-file)
 * around such a record. Any other line is declined: a Python callable
 * handles it, exactly as the pure-Python scanner would, and returns its row
 * values. Lines are handled in order, so IDs are interned first seen first
 * either way.
 *
 * Rows are written into a caller-provided buffer laid out as SCAN_DTYPE.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- rows */

typedef struct {
    int64_t off;
    int32_t len;
    int32_t line;
    double ts;
    int32_t trace;
    int32_t span;
    int32_t parent;
    uint16_t svc;
    uint8_t flags;
    uint8_t reason;
    double start;
} Row;

#define ROW_SIZE 48
_Static_assert(sizeof(Row) == ROW_SIZE, "Row must match SCAN_DTYPE");
_Static_assert(offsetof(Row, start) == 40, "Row must match SCAN_DTYPE");

/* Flags and reasons, as in _parse.py. */
#define F_JSON 1
#define F_ERROR 4
#define F_SPAN_RECORD 8
#define F_KIND_CLIENT 16
#define F_KIND_SERVER 32
#define F_KIND_PRODUCER 128
#define R_NO_TRACE_ID 1

/* Errors of the code that runs without the GIL, raised once it is back. */
#define ERR_PYTHON -1 /* already set */
#define ERR_IDS -2
#define ERR_MEMORY -3
#define ERR_LINE -4

#define MAX_DEPTH 64
#define MAX_NUMBER 64  /* longer number tokens are declined */
#define MAX_STRICT_NUMBER 24

/* ---------------------------------------------------------------- keys */

#define MAX_KEY_LEN 32

/* Every key of the general parser's struct; the first N_COMMON are those of
 * logtrace's own records. */
enum {
    K_TIMESTAMP,
    K_LEVEL,
    K_SERVICE,
    K_TRACE_ID,
    K_SPAN_ID,
    K_PARENT_SPAN_ID,
    K_SPAN_KIND,
    K_SPAN_START,
    K_DURATION_MS,
    K_ERROR_TYPE,
    K_EXCEPTION_TYPE,
    K_EXC_INFO,
    K_STATUS,
    K_at_timestamp,
    K_time,
    K_ts,
    K_asctime,
    K_timeUnixNano,
    K_levelname,
    K_severity,
    K_severityText,
    K_log_dot_level,
    K_log,
    K_service_dot_name,
    K_service_name,
    K_serviceName,
    K_app,
    K_application,
    K_dd_dot_service,
    K_otelServiceName,
    K_traceId,
    K_traceID,
    K_otelTraceID,
    K_trace_dot_id,
    K_trace,
    K_dd_dot_trace_id,
    K_dd,
    K_traceparent,
    K_spanId,
    K_spanID,
    K_otelSpanID,
    K_span_dot_id,
    K_span,
    K_dd_dot_span_id,
    K_parentSpanId,
    K_parent_id,
    K_parent_dot_id,
    K_span_dot_start_ns,
    K_transaction_dot_id,
    K_transaction,
    N_KEYS,
    K_NONE,
    K_DECLINE
};

#define N_COMMON 13

typedef struct {
    char name[MAX_KEY_LEN + 1]; /* zero padded */
    int id;
    size_t len;
} KeyName;

static const KeyName KEY_NAMES[] = {
    {"timestamp", K_TIMESTAMP, 9},
    {"level", K_LEVEL, 5},
    {"service", K_SERVICE, 7},
    {"trace_id", K_TRACE_ID, 8},
    {"span_id", K_SPAN_ID, 7},
    {"parent_span_id", K_PARENT_SPAN_ID, 14},
    {"span.kind", K_SPAN_KIND, 9},
    {"span.start", K_SPAN_START, 10},
    {"duration_ms", K_DURATION_MS, 11},
    {"error.type", K_ERROR_TYPE, 10},
    {"exception.type", K_EXCEPTION_TYPE, 14},
    {"exc_info", K_EXC_INFO, 8},
    {"http.response.status_code", K_STATUS, 25},
    {"@timestamp", K_at_timestamp, 10},
    {"time", K_time, 4},
    {"ts", K_ts, 2},
    {"asctime", K_asctime, 7},
    {"timeUnixNano", K_timeUnixNano, 12},
    {"levelname", K_levelname, 9},
    {"severity", K_severity, 8},
    {"severityText", K_severityText, 12},
    {"log.level", K_log_dot_level, 9},
    {"log", K_log, 3},
    {"service.name", K_service_dot_name, 12},
    {"service_name", K_service_name, 12},
    {"serviceName", K_serviceName, 11},
    {"app", K_app, 3},
    {"application", K_application, 11},
    {"dd.service", K_dd_dot_service, 10},
    {"otelServiceName", K_otelServiceName, 15},
    {"traceId", K_traceId, 7},
    {"traceID", K_traceID, 7},
    {"otelTraceID", K_otelTraceID, 11},
    {"trace.id", K_trace_dot_id, 8},
    {"trace", K_trace, 5},
    {"dd.trace_id", K_dd_dot_trace_id, 11},
    {"dd", K_dd, 2},
    {"traceparent", K_traceparent, 11},
    {"spanId", K_spanId, 6},
    {"spanID", K_spanID, 6},
    {"otelSpanID", K_otelSpanID, 10},
    {"span.id", K_span_dot_id, 7},
    {"span", K_span, 4},
    {"dd.span_id", K_dd_dot_span_id, 10},
    {"parentSpanId", K_parentSpanId, 12},
    {"parent_id", K_parent_id, 9},
    {"parent.id", K_parent_dot_id, 9},
    {"span.start_ns", K_span_dot_start_ns, 13},
    {"transaction.id", K_transaction_dot_id, 14},
    {"transaction", K_transaction, 11},
    /* Keys of collectors' and backends' wrappers, which the Python side
     * unwraps (or may): a line with any of them is declined on sight. */
    {"_dd.p.tid", K_DECLINE, 9},
    {"stream", K_DECLINE, 6},
    {"MESSAGE", K_DECLINE, 7},
    {"PRIORITY", K_DECLINE, 8},
    {"__REALTIME_TIMESTAMP", K_DECLINE, 20},
    {"_SYSTEMD_UNIT", K_DECLINE, 13},
    {"SYSLOG_IDENTIFIER", K_DECLINE, 17},
    {"resourceLogs", K_DECLINE, 12},
    {"scopeLogs", K_DECLINE, 9},
    {"logRecords", K_DECLINE, 10},
    {"body", K_DECLINE, 4},
    {"resource", K_DECLINE, 8},
    {"severityNumber", K_DECLINE, 14},
    {"observedTimeUnixNano", K_DECLINE, 20},
    {"jsonPayload", K_DECLINE, 11},
    {"textPayload", K_DECLINE, 11},
    {"logName", K_DECLINE, 7},
    {"logging.googleapis.com/trace", K_DECLINE, 28},
    {"logging.googleapis.com/spanId", K_DECLINE, 29},
    {"line", K_DECLINE, 4},
    {"labels", K_DECLINE, 6},
    {"_source", K_DECLINE, 7},
    {"logStreamName", K_DECLINE, 13},
    {"logGroupName", K_DECLINE, 12},
    {"ingestionTime", K_DECLINE, 13},
    {"eventId", K_DECLINE, 7},
    {"hits", K_DECLINE, 4},
    {"events", K_DECLINE, 6},
    {"severity_text", K_DECLINE, 13},
    {"severity_number", K_DECLINE, 15},
    {"observed_timestamp", K_DECLINE, 18},
    {"_dd", K_DECLINE, 3},
    /* Elastic APM's record attributes, as a JSON formatter writes them. */
    {"elasticapm_trace_id", K_DECLINE, 19},
    {"elasticapm_span_id", K_DECLINE, 18},
    {"elasticapm_transaction_id", K_DECLINE, 25},
};

#define N_KEY_NAMES (sizeof(KEY_NAMES) / sizeof(KEY_NAMES[0]))

/* Open-addressing table over KEY_NAMES (filled at import); any hash works,
 * the probe compares whole keys. */
#define KEY_SLOTS 1024
static signed char key_slot[KEY_SLOTS];

static inline unsigned
key_hash(const unsigned char *s, size_t n)
{
    return ((unsigned)n * 31u + s[0] * 7u + s[n - 1] * 131u + s[n / 2] * 17u) & (KEY_SLOTS - 1);
}

static void
init_keys(void)
{
    memset(key_slot, -1, sizeof(key_slot));
    for (size_t i = 0; i < N_KEY_NAMES; i++) {
        const unsigned char *name = (const unsigned char *)KEY_NAMES[i].name;
        unsigned h = key_hash(name, strlen(KEY_NAMES[i].name));
        while (key_slot[h] >= 0) {
            h = (h + 1) & (KEY_SLOTS - 1);
        }
        key_slot[h] = (signed char)i;
    }
}

static inline uint64_t
load64(const unsigned char *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

/* Whole-key comparison with word loads that stay within both strings. */
static inline int
key_equal(const char *name, const unsigned char *s, size_t n)
{
    const unsigned char *k = (const unsigned char *)name;
    if (n < 8) {
        for (size_t i = 0; i < n; i++) {
            if (k[i] != s[i]) {
                return 0;
            }
        }
        return 1;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (load64(k + i) != load64(s + i)) {
            return 0;
        }
    }
    return i == n || load64(k + n - 8) == load64(s + n - 8);
}

static inline int
key_id(const unsigned char *s, size_t n)
{
    if (n == 0 || n > MAX_KEY_LEN) {
        return K_NONE;
    }
    unsigned h = key_hash(s, n);
    while (key_slot[h] >= 0) {
        const KeyName *k = &KEY_NAMES[key_slot[h]];
        if (k->len == n && key_equal(k->name, s, n)) {
            return k->id;
        }
        h = (h + 1) & (KEY_SLOTS - 1);
    }
    return K_NONE;
}

/* ---------------------------------------------------------------- JSON */

/* 1 for bytes that end the plain run of a string: quote, backslash,
 * control characters and anything outside ASCII. */
static unsigned char string_stop[256];
static unsigned char lower_hex_digit[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        string_stop[c] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) ? 1 : 0;
        lower_hex_digit[c] = ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) ? 1 : 0;
    }
}

/* The first byte at or after p that ends a plain string run, or end. */
#if defined(__SSE2__)
#include <emmintrin.h>
static inline const unsigned char *
find_stop(const unsigned char *p, const unsigned char *end)
{
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* Signed compare: control characters and bytes >= 0x80 are both below 0x20. */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                 _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(m);
        if (mask != 0) {
            return p + __builtin_ctz((unsigned)mask);
        }
        p += 16;
    }
    while (p < end && !string_stop[*p]) {
        p++;
    }
    return p;
}
#else
static inline const unsigned char *
find_stop(const unsigned char *p, const unsigned char *end)
{
    while (p < end && !string_stop[*p]) {
        p++;
    }
    return p;
}
#endif

static inline int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

#define SKIP_WS(p, end)                                      \
    while ((p) < (end) && (*(p) == ' ' || *(p) == '\t')) { \
        (p)++;                                               \
    }

/* A string starting at the quote under *pp; on success *pp is past the
 * closing quote and *escaped tells whether it held escapes. Declines
 * control characters, non-ASCII bytes and surrogate escapes. */
static int
skip_string(const unsigned char **pp, const unsigned char *end, int *escaped)
{
    const unsigned char *p = *pp + 1;
    int esc = 0;
    for (;;) {
        p = find_stop(p, end);
        if (p >= end) {
            return 0;
        }
        if (*p == '"') {
            *pp = p + 1;
            *escaped = esc;
            return 1;
        }
        if (*p != '\\') {
            return 0;
        }
        esc = 1;
        if (p + 1 >= end) {
            return 0;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u': {
            if (end - p < 6) {
                return 0;
            }
            int v = 0;
            for (int k = 2; k < 6; k++) {
                int h = hex_value(p[k]);
                if (h < 0) {
                    return 0;
                }
                v = v * 16 + h;
            }
            if (v >= 0xD800 && v <= 0xDFFF) {
                return 0;
            }
            p += 6;
            break;
        }
        default:
            return 0;
        }
    }
}

/* A number token; strict ones (values the decoder materialises) must be
 * short and without exponent, so that they convert without overflow. */
static int
skip_number(const unsigned char **pp, const unsigned char *end, int strict, int *is_float)
{
    const unsigned char *p = *pp;
    const unsigned char *start = p;
    int fl = 0;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end) {
        return 0;
    }
    if (*p == '0') {
        p++;
    }
    else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    else {
        return 0;
    }
    if (p < end && *p == '.') {
        p++;
        fl = 1;
        if (p >= end || !is_digit(*p)) {
            return 0;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (strict) {
            return 0;
        }
        p++;
        fl = 1;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return 0;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p - start > (strict ? MAX_STRICT_NUMBER : MAX_NUMBER)) {
        return 0;
    }
    *pp = p;
    *is_float = fl;
    return 1;
}

/* One JSON value of any kind, validated, at nesting depth `depth` (the
 * value's container); *pp moves past it. */
static int
skip_value(const unsigned char **pp, const unsigned char *end, int depth, int strict)
{
    const unsigned char *p = *pp;
    unsigned char stack[MAX_DEPTH];
    int sp = 0;
    int escaped, is_float;

value:
    if (p >= end) {
        return 0;
    }
    switch (*p) {
    case '"':
        if (!skip_string(&p, end, &escaped)) {
            return 0;
        }
        goto after;
    case '{':
    case '[':
        if (depth + sp + 1 > MAX_DEPTH) {
            return 0;
        }
        stack[sp++] = *p;
        p++;
        SKIP_WS(p, end);
        if (p < end && *p == (stack[sp - 1] == '{' ? '}' : ']')) {
            p++;
            sp--;
            goto after;
        }
        if (stack[sp - 1] == '{') {
            goto key;
        }
        goto value;
    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            return 0;
        }
        p += 4;
        goto after;
    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            return 0;
        }
        p += 5;
        goto after;
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            return 0;
        }
        p += 4;
        goto after;
    default:
        if (!skip_number(&p, end, strict, &is_float)) {
            return 0;
        }
        goto after;
    }

key:
    if (p >= end || *p != '"') {
        return 0;
    }
    if (!skip_string(&p, end, &escaped)) {
        return 0;
    }
    SKIP_WS(p, end);
    if (p >= end || *p != ':') {
        return 0;
    }
    p++;
    SKIP_WS(p, end);
    goto value;

after:
    if (sp == 0) {
        *pp = p;
        return 1;
    }
    SKIP_WS(p, end);
    if (p >= end) {
        return 0;
    }
    if (*p == ',') {
        p++;
        SKIP_WS(p, end);
        if (stack[sp - 1] == '{') {
            goto key;
        }
        goto value;
    }
    if (*p == (stack[sp - 1] == '{' ? '}' : ']')) {
        p++;
        sp--;
        goto after;
    }
    return 0;
}

/* ---------------------------------------------------------------- fields */

typedef struct {
    const unsigned char *v; /* value text (NULL: key absent) */
    size_t n;
} Value;

static inline int
is_null(const Value *v)
{
    return v->v == NULL || (v->n == 4 && memcmp(v->v, "null", 4) == 0);
}

/* The content of a string value without escapes, else 0. */
static inline int
plain_string(const Value *v, const unsigned char **s, size_t *n)
{
    if (v->v == NULL || v->n < 2 || v->v[0] != '"') {
        return 0;
    }
    for (size_t i = 1; i + 1 < v->n; i++) {
        if (v->v[i] == '\\') {
            return 0;
        }
    }
    *s = v->v + 1;
    *n = v->n - 2;
    return 1;
}

/* A string that spells none in any case, as _id_forms.means_none: `none`,
 * `null`, `nil`, `undefined`, `-`, `n/a` (a service named by a format string
 * outside a request). ASCII only: a byte past it never matches. */
static int
means_none(const unsigned char *s, size_t n)
{
    static const char *const words[] = {"none", "null", "nil", "undefined", "-", "n/a"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t k = strlen(words[w]);
        if (k != n) {
            continue;
        }
        size_t i = 0;
        while (i < n) {
            unsigned char c = s[i];
            c = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
            if (c != (unsigned char)words[w][i]) {
                break;
            }
            i++;
        }
        if (i == n) {
            return 1;
        }
    }
    return 0;
}

/* OpenTelemetry's name for a service it was given none for, as
 * _id_forms.names_no_service: `unknown_service`, or `unknown_service:` and
 * anything (`unknown_service:python`). */
static int
unknown_service(const unsigned char *s, size_t n)
{
    static const char word[] = "unknown_service";
    size_t k = sizeof word - 1;
    return n >= k && memcmp(s, word, k) == 0 && (n == k || s[k] == ':');
}

/* Canonical ID: `width` lowercase hex digits, not all zero. */
static int
canonical_id(const unsigned char *s, size_t n, size_t width)
{
    if (n != width) {
        return 0;
    }
#if defined(__SSE2__)
    if (n % 16 == 0) {
        const __m128i zero = _mm_set1_epi8('0');
        const __m128i lower_a = _mm_set1_epi8('a');
        const __m128i nine = _mm_set1_epi8(9);
        const __m128i five = _mm_set1_epi8(5);
        int all_hex = 0xFFFF, all_zero = 0xFFFF;
        for (size_t i = 0; i < n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i d = _mm_sub_epi8(v, zero);
            __m128i a = _mm_sub_epi8(v, lower_a);
            __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(d, nine), d),
                                      _mm_cmpeq_epi8(_mm_min_epu8(a, five), a));
            all_hex &= _mm_movemask_epi8(ok);
            all_zero &= _mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        }
        return all_hex == 0xFFFF && all_zero != 0xFFFF;
    }
#endif
    unsigned ok = 1, nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        ok &= lower_hex_digit[s[i]];
        nonzero |= s[i] ^ (unsigned)'0';
    }
    return ok && nonzero;
}

static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static inline int
digits(const unsigned char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24};

/* Timestamp text as the Python side reads it (_timestamps.py), for the
 * strict layout `YYYY-MM-DD[Tt ]HH:MM:SS[.,fraction of 1 to 9 digits]` then
 * nothing, `Z`, `z`, `+HH`, `+HHMM` or `+HH:MM` (or `-`): whole seconds as an
 * integer plus the correctly rounded fraction, minus the offset. Anything
 * looser (trailing text, other layouts, years before 1971) declines. */
static int
parse_iso(const unsigned char *s, size_t n, double *out)
{
    int year, month, day, hour, minute, second, off_h = 0, off_m = 0;
    if (n < 19 || n > 40) {
        return 0;
    }
    if (s[4] != '-' || s[7] != '-' || !(s[10] == 'T' || s[10] == 't' || s[10] == ' ') ||
        s[13] != ':' || s[16] != ':') {
        return 0;
    }
    if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day) ||
        !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &minute) ||
        !digits(s + 17, 2, &second)) {
        return 0;
    }
    if (year < 1971 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
        minute > 59 || second > 60) {
        return 0;
    }
    size_t i = 19;
    int64_t frac = 0;
    int nd = 0;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        i++;
        while (i < n && is_digit(s[i])) {
            if (++nd > 9) {
                return 0;
            }
            frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (nd == 0) {
            return 0;
        }
    }
    int offset = 0;
    if (i == n || (i + 1 == n && (s[i] == 'Z' || s[i] == 'z'))) {
        offset = 0;
    }
    else if (s[i] == '+' || s[i] == '-') {
        size_t rest = n - i - 1;
        const unsigned char *o = s + i + 1;
        if (rest == 2 && digits(o, 2, &off_h)) {
            off_m = 0;
        }
        else if (rest == 4 && digits(o, 2, &off_h) && digits(o + 2, 2, &off_m)) {
        }
        else if (rest == 5 && o[2] == ':' && digits(o, 2, &off_h) && digits(o + 3, 2, &off_m)) {
        }
        else {
            return 0;
        }
        offset = (s[i] == '-' ? -1 : 1) * (off_h * 3600 + off_m * 60);
    }
    else {
        return 0;
    }
    int64_t base = (days_from_civil(year, month, 1) + day - 1) * 86400 + hour * 3600 +
                   minute * 60 + second;
    double t = (double)base;
    if (nd > 0) {
        t += (double)frac / POW10[nd];
    }
    *out = offset ? t - (double)offset : t;
    return 1;
}

static const char *const ERROR_LEVELS[] = {
    "error", "err", "critical", "crit", "fatal", "alert", "emerg", "emergency", "severe", "panic",
};

static int
is_error_level(const unsigned char *s, size_t n)
{
    char low[10];
    if (n == 0 || n > 9) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        low[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    for (size_t k = 0; k < sizeof(ERROR_LEVELS) / sizeof(ERROR_LEVELS[0]); k++) {
        if (strlen(ERROR_LEVELS[k]) == n && memcmp(ERROR_LEVELS[k], low, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Python truthiness of a validated value (strict numbers: no exponent). */
static int
truthy(const Value *v)
{
    const unsigned char *s = v->v;
    size_t n = v->n;
    if (s == NULL) {
        return 0;
    }
    switch (s[0]) {
    case '"':
        return n > 2;
    case 't':
        return 1;
    case 'f':
    case 'n':
        return 0;
    case '[':
    case '{':
        for (size_t i = 1; i < n; i++) {
            if (s[i] != ' ' && s[i] != '\t') {
                return s[i] != ']' && s[i] != '}';
            }
        }
        return 0;
    default:
        for (size_t i = 0; i < n; i++) {
            if (s[i] >= '1' && s[i] <= '9') {
                return 1;
            }
        }
        return 0;
    }
}

enum { NUM_NONE, NUM_INT, NUM_FLOAT };

#if defined(__GLIBC__)
#include <locale.h>
#include <stdlib.h>
static locale_t c_locale;
#endif

/* A strict number value: its kind and value as a double (exact for ints
 * within 2**53, correctly rounded otherwise, as float() rounds an int or
 * msgspec a decimal). -1 declines. */
static int
number_value(const Value *v, double *out, int64_t *iout)
{
    const unsigned char *s = v->v;
    size_t n = v->n;
    if (s == NULL || !(s[0] == '-' || is_digit(s[0]))) {
        return NUM_NONE;
    }
    if (n > MAX_STRICT_NUMBER) {
        return -1;
    }
    int fl = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') {
            fl = 1;
        }
    }
    if (!fl) {
        size_t i = s[0] == '-';
        if (n - i > 19) {
            return -1;
        }
        uint64_t x = 0;
        for (; i < n; i++) {
            x = x * 10 + (uint64_t)(s[i] - '0');
        }
        if (x > (uint64_t)INT64_MAX) {
            return -1;
        }
        int64_t y = s[0] == '-' ? -(int64_t)x : (int64_t)x;
        *iout = y;
        *out = (double)y;
        return NUM_INT;
    }
    {
        /* Plain decimals whose digits make an integer below 2**53: the
         * mantissa and the power of ten are exact doubles, so one division
         * rounds correctly, as strtod. */
        uint64_t mant = 0;
        int ndigits = 0, frac = -1;
        size_t i = s[0] == '-';
        for (; i < n; i++) {
            if (s[i] == '.') {
                frac = 0;
                continue;
            }
            if (!is_digit(s[i])) {
                break;
            }
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            ndigits++;
            if (frac >= 0) {
                frac++;
            }
        }
        if (i == n && frac >= 0 && ndigits <= 19 && mant <= ((uint64_t)1 << 53) && frac <= 22) {
            double d = (double)mant / POW10[frac];
            *out = s[0] == '-' ? -d : d;
            return NUM_FLOAT;
        }
    }
#if defined(__GLIBC__)
    if (c_locale != (locale_t)0) {
        /* More digits: glibc's strtod rounds correctly too. */
        char text[MAX_STRICT_NUMBER + 1];
        char *stop;
        memcpy(text, s, n);
        text[n] = '\0';
        double d = strtod_l(text, &stop, c_locale);
        if (stop == text + n && isfinite(d)) {
            *out = d;
            return NUM_FLOAT;
        }
    }
#endif
    return -1;
}

typedef struct {
    const unsigned char *trace; /* canonical 32 hex, or NULL: no trace */
    const unsigned char *span;  /* canonical 16 hex or NULL */
    const unsigned char *parent;
    const unsigned char *service; /* NULL: none (the file's service) */
    size_t service_len;
    double ts;
    double start;
    uint8_t flags;
    unsigned char trace_buf[32]; /* IDs rewritten in canonical form */
    unsigned char span_buf[16];
    unsigned char parent_buf[16];
} Fields;

/* The values of the keys of interest in one line; only those in `seen` are set. */
typedef struct {
    uint64_t seen;
    Value vals[N_KEYS];
} Keys;

static const Value NO_VALUE = {NULL, 0};

#define VP(keys, id) (((keys)->seen >> (id)) & 1 ? &(keys)->vals[id] : &NO_VALUE)
#define V(id) VP(L, id)

/* The first present, non-null value among `ids` (-1 ends the list), or NULL. */
static const Value *
first_of(const Keys *L, const int *ids)
{
    for (; *ids >= 0; ids++) {
        if (!is_null(V(*ids))) {
            return V(*ids);
        }
    }
    return NULL;
}

/* The key lists of _parse.py's _trace, _span, _timestamp, _service and
 * _is_error, in the same order (the first non-null value wins). */
static const int TRACE_KEYS[] = {K_TRACE_ID, K_traceId, K_otelTraceID, K_trace_dot_id, K_traceID, -1};
static const int SPAN_KEYS[] = {K_SPAN_ID, K_spanId, K_otelSpanID, K_span_dot_id, K_spanID, -1};
static const int PARENT_KEYS[] = {K_PARENT_SPAN_ID, K_parentSpanId, K_parent_id, K_parent_dot_id, -1};
static const int TIME_KEYS[] = {K_TIMESTAMP, K_at_timestamp, K_time, K_ts, K_asctime, K_timeUnixNano, -1};
static const int SERVICE_KEYS[] = {K_SERVICE,     K_service_dot_name, K_service_name,
                                   K_serviceName, K_app,              K_application,
                                   K_dd_dot_service, K_otelServiceName, -1};
static const int LEVEL_KEYS[] = {K_LEVEL, K_levelname, K_severity, K_severityText, K_log_dot_level, -1};

static inline int
is_string(const Value *v)
{
    return v->v != NULL && v->v[0] == '"';
}

/* The value of key `name` in a validated object value (what `dict.get`
 * gives): 1 found, 0 absent or not an object, -1 declines (a key with
 * escapes, which may spell `name`, or `name` twice). */
static int
object_get(const Value *obj, const char *name, Value *out)
{
    size_t name_len = strlen(name);
    if (obj->v == NULL || obj->v[0] != '{') {
        return 0;
    }
    const unsigned char *p = obj->v + 1;
    const unsigned char *end = obj->v + obj->n - 1; /* the closing brace */
    int found = 0;
    SKIP_WS(p, end);
    if (p >= end) {
        return 0;
    }
    for (;;) {
        if (*p != '"') {
            return -1;
        }
        const unsigned char *k = ++p;
        p = find_stop(p, end);
        if (p >= end || *p != '"') {
            return -1;
        }
        size_t kn = (size_t)(p - k);
        p++;
        SKIP_WS(p, end);
        if (p >= end || *p != ':') {
            return -1;
        }
        p++;
        SKIP_WS(p, end);
        const unsigned char *v = p;
        if (!skip_value(&p, end, 2, 1)) {
            return -1;
        }
        if (kn == name_len && memcmp(k, name, kn) == 0) {
            if (found) {
                return -1;
            }
            found = 1;
            out->v = v;
            out->n = (size_t)(p - v);
        }
        SKIP_WS(p, end);
        if (p >= end) {
            return found;
        }
        if (*p != ',') {
            return -1;
        }
        p++;
        SKIP_WS(p, end);
    }
}

static inline int
is_hex(unsigned char c)
{
    return hex_value(c) >= 0;
}

/* A hex ID as _id_forms.norm_*_id writes it: an optional `0x`, 1 to 32 hex
 * digits lowercased and left-padded to `width` (all zeros: none); an empty
 * or blank string is none. Other spellings (UUIDs, longer hex, free text)
 * decline: -1. */
static int
id_text(const unsigned char *s, size_t n, size_t width, unsigned char *buf,
        const unsigned char **out)
{
    *out = NULL;
    if (n == width && canonical_id(s, n, width)) {
        *out = s;
        return 0;
    }
    if (n >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && n - 2 <= 32) {
        size_t i = 2;
        while (i < n && is_hex(s[i])) {
            i++;
        }
        if (i == n) {
            s += 2;
            n -= 2;
        }
    }
    size_t i = 0;
    while (i < n && is_hex(s[i])) {
        i++;
    }
    if (n > 0 && i == n) {
        if (n > width) {
            return -1; /* kept as written, not of the table's width */
        }
        int nonzero = 0;
        memset(buf, '0', width - n);
        for (size_t k = 0; k < n; k++) {
            unsigned char c = s[k];
            c = (unsigned char)((c >= 'A' && c <= 'F') ? c + 32 : c);
            buf[width - n + k] = c;
            nonzero |= c != '0';
        }
        if (nonzero) {
            *out = buf;
        }
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        if (s[k] != ' ') {
            return -1;
        }
    }
    return 0;
}

/* A decimal ID (digits only) as _id_forms.decimal_id writes it: zero-padded
 * lowercase hex of `width` digits; 0 or too large: none. */
static int
id_decimal(const unsigned char *s, size_t n, size_t width, unsigned char *buf,
           const unsigned char **out)
{
    static const char HEX[] = "0123456789abcdef";
    *out = NULL;
    if (n > 38) {
        return -1;
    }
    unsigned __int128 x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return 0;
        }
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    if (n == 0 || x == 0 || (width < 32 && (x >> (4 * width)) != 0)) {
        return 0;
    }
    for (size_t i = width; i-- > 0;) {
        buf[i] = (unsigned char)HEX[(unsigned)(x & 15)];
        x >>= 4;
    }
    *out = buf;
    return 0;
}

/* An ID from any value: norm_*_id for strings and integers, decimal_id (for
 * `decimal` keys: Datadog's) for strings of digits and integers; other
 * values give none. -1 declines. */
static int
id_value(const Value *v, size_t width, int decimal, unsigned char *buf, const unsigned char **out)
{
    const unsigned char *s;
    size_t n;
    *out = NULL;
    if (v == NULL || is_null(v)) {
        return 0;
    }
    switch (v->v[0]) {
    case '"':
        if (!plain_string(v, &s, &n)) {
            return -1;
        }
        return decimal ? id_decimal(s, n, width, buf, out) : id_text(s, n, width, buf, out);
    case '-':
        return 0; /* below zero, or a float: none */
    default:
        if (!is_digit(v->v[0])) {
            return 0; /* true, false, an object or an array: none */
        }
        for (size_t i = 0; i < v->n; i++) {
            if (!is_digit(v->v[i])) {
                return 0;
            }
        }
        return id_decimal(v->v, v->n, width, buf, out);
    }
}

/* A Datadog trace ID: decimal (its low 64 bits); 32 hex digits as some
 * tracers write it decline, for the parser to read as a W3C ID. */
static int
dd_trace_value(const Value *v, unsigned char *buf, const unsigned char **out)
{
    const unsigned char *s;
    size_t n;
    if (v != NULL && v->n > 0 && v->v[0] == '"' && plain_string(v, &s, &n) && n == 32) {
        for (size_t i = 0; i < n; i++) {
            if (!is_digit(s[i])) {
                *out = NULL;
                return -1;
            }
        }
    }
    return id_value(v, 32, 1, buf, out);
}

/* An ID under `name` in an object value (`{"id": ...}`), none when the
 * value is no object or lacks it. */
static int
nested_id(const Value *v, const char *name, size_t width, int decimal, unsigned char *buf,
          const unsigned char **out)
{
    Value inner;
    *out = NULL;
    int got = object_get(v, name, &inner);
    if (got <= 0) {
        return got;
    }
    return id_value(&inner, width, decimal, buf, out);
}

/* Elastic APM's transaction (`transaction.id`, or `id` under a
 * `transaction` object), as _known_keys._transaction reads it. */
static int
transaction_id(const Keys *L, unsigned char *buf, const unsigned char **out)
{
    *out = NULL;
    if (!is_null(V(K_transaction_dot_id))) {
        return id_value(V(K_transaction_dot_id), 16, 0, buf, out);
    }
    if (!is_null(V(K_transaction))) {
        return nested_id(V(K_transaction), "id", 16, 0, buf, out);
    }
    return 0;
}

/* Epoch seconds from a timestamp value, as parse_timestamp: strict ISO
 * text, or a number of seconds, milliseconds, microseconds or nanoseconds;
 * NaN for none. 0 declines. */
static int
timestamp_value(const Value *v, double *out)
{
    const unsigned char *s;
    size_t n;
    *out = NAN;
    if (v == NULL) {
        return 1;
    }
    if (v->v[0] == '"') {
        return plain_string(v, &s, &n) && parse_iso(s, n, out);
    }
    double d;
    int64_t iv;
    int kind = number_value(v, &d, &iv);
    if (kind < 0) {
        return 0;
    }
    if (kind == NUM_NONE || !(d > 0)) {
        return 1; /* true, false, objects, arrays, zero or below: none */
    }
    if (d < 1e11) {
        *out = d;
    }
    else if (d < 1e14) {
        *out = d / 1e3;
    }
    else if (d < 1e17) {
        *out = d / 1e6;
    }
    else if (d < 1e20) {
        *out = d / 1e9;
    }
    return 1;
}

/* The error flag from error keys other than the level. -1 declines. */
static int
error_keys(const Keys *L)
{
    double dv;
    int64_t iv = 0;
    int err = !is_null(V(K_ERROR_TYPE)) || !is_null(V(K_EXCEPTION_TYPE)) ||
              truthy(V(K_EXC_INFO));
    int kind = number_value(V(K_STATUS), &dv, &iv);
    if (kind < 0) {
        return -1;
    }
    return err || (kind == NUM_INT && iv >= 500);
}

/* Whether a level value names an error: a word of ERROR_LEVELS in any case,
 * or an integer of 50 or more (pino, Python's logging numbers). -1 declines. */
static int
error_level(const Value *v)
{
    const unsigned char *s;
    size_t n;
    if (v->v[0] == '"') {
        if (!plain_string(v, &s, &n)) {
            return -1;
        }
        return is_error_level(s, n);
    }
    double dv;
    int64_t iv = 0;
    int kind = number_value(v, &dv, &iv);
    if (kind < 0) {
        return -1;
    }
    return kind == NUM_INT && iv >= 50;
}

#define MAX_EXACT ((int64_t)1 << 53)

/* The fields of one JSON object, whatever its keys' names and order among
 * the conventions _parse.py reads, exactly as its _fields computes them (and
 * its common-case path, which gives the same values for the lines it
 * takes). 0 declines: the Python path handles the line. */
static int
record_fields(const Keys *L, Fields *f)
{
    const unsigned char *s;
    size_t n;
    const Value *v;
    Value inner;

    /* Trace: the first of its keys, else nested `trace.id`, else Datadog's
     * decimal IDs; a `traceparent` string declines. */
    v = first_of(L, TRACE_KEYS);
    if (v != NULL) {
        if (id_value(v, 32, 0, f->trace_buf, &f->trace) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_trace))) {
        if (V(K_trace)->v[0] == '"') {
            return 0; /* Google's `projects/P/traces/ID`: the Python path */
        }
        if (nested_id(V(K_trace), "id", 32, 0, f->trace_buf, &f->trace) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_dd_dot_trace_id))) {
        if (dd_trace_value(V(K_dd_dot_trace_id), f->trace_buf, &f->trace) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_dd))) {
        int got = object_get(V(K_dd), "trace_id", &inner);
        if (got < 0 || (got > 0 && dd_trace_value(&inner, f->trace_buf, &f->trace) < 0)) {
            return 0;
        }
    }
    else if (!is_null(V(K_traceparent)) && V(K_traceparent)->v[0] == '"') {
        return 0;
    }

    /* The parser's common case (string trace_id, timestamp, level and
     * service, span_id and parent_span_id strings or none) reads the span
     * and parent from those two keys alone. */
    int common = is_string(V(K_TRACE_ID)) && is_string(V(K_TIMESTAMP)) &&
                 is_string(V(K_LEVEL)) && is_string(V(K_SERVICE)) &&
                 V(K_SERVICE)->n > 2 && V(K_SERVICE)->n <= 202 &&
                 (is_null(V(K_SPAN_ID)) || is_string(V(K_SPAN_ID))) &&
                 (is_null(V(K_PARENT_SPAN_ID)) || is_string(V(K_PARENT_SPAN_ID)));
    v = common ? V(K_SPAN_ID) : first_of(L, SPAN_KEYS);
    if (common || v != NULL) {
        if (id_value(v, 16, 0, f->span_buf, &f->span) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_span))) {
        if (V(K_span)->v[0] == '"') {
            return 0;
        }
        if (nested_id(V(K_span), "id", 16, 0, f->span_buf, &f->span) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_dd_dot_span_id))) {
        if (id_value(V(K_dd_dot_span_id), 16, 1, f->span_buf, &f->span) < 0) {
            return 0;
        }
    }
    else if (!is_null(V(K_dd))) {
        if (nested_id(V(K_dd), "span_id", 16, 1, f->span_buf, &f->span) < 0) {
            return 0;
        }
    }
    else if (transaction_id(L, f->span_buf, &f->span) < 0) {
        return 0;
    }

    v = common ? V(K_PARENT_SPAN_ID) : first_of(L, PARENT_KEYS);
    if (id_value(v, 16, 0, f->parent_buf, &f->parent) < 0) {
        return 0;
    }
    if (!common && f->parent == NULL && f->span != NULL) {
        /* A span inside an Elastic APM transaction: that transaction holds it. */
        if (transaction_id(L, f->parent_buf, &f->parent) < 0) {
            return 0;
        }
        if (f->parent != NULL && memcmp(f->parent, f->span, 16) == 0) {
            f->parent = NULL;
        }
    }

    if (!timestamp_value(first_of(L, TIME_KEYS), &f->ts)) {
        return 0;
    }

    /* Service: the first of its keys; an object gives its `name`. */
    f->service = NULL;
    f->service_len = 0;
    v = first_of(L, SERVICE_KEYS);
    if (v == NULL && !is_null(V(K_dd)) && V(K_dd)->v[0] == '{') {
        /* Datadog's nested `dd.service`, read only without a service key. */
        int got = object_get(V(K_dd), "service", &inner);
        if (got < 0) {
            return 0;
        }
        v = got ? &inner : NULL;
        if (v != NULL && v->v[0] == '{') {
            return 0; /* an object there: the parser's odd case, its path */
        }
    }
    if (v != NULL && v->v[0] == '{') {
        int got = object_get(v, "name", &inner);
        if (got < 0) {
            return 0;
        }
        v = got ? &inner : NULL;
    }
    if (v != NULL && v->v[0] == '"') {
        if (!plain_string(v, &s, &n)) {
            return 0;
        }
        if (n > 0 && n <= 200 && !means_none(s, n) && !unknown_service(s, n)) {
            f->service = s;
            f->service_len = n;
        }
    }

    if (!is_null(V(K_log)) && V(K_log)->v[0] == '"') {
        return 0; /* a string `log`: a collector's wrapper (Docker's json-file),
                   * which the Python path reads whatever else the line has */
    }
    uint8_t flags = F_JSON;
    int err;
    v = first_of(L, LEVEL_KEYS);
    if (v != NULL) {
        err = error_level(v);
    }
    else if (!is_null(V(K_log))) {
        /* An object's `level` (ECS nested); a string `log` is a collector's
         * wrapper (Docker's json-file): the Python path reads those. */
        if (V(K_log)->v[0] != '{') {
            return 0;
        }
        int got = object_get(V(K_log), "level", &inner);
        err = got < 0 ? -1 : (got && inner.v[0] == '"') ? error_level(&inner) : 0;
    }
    else {
        err = 0;
    }
    if (err < 0) {
        return 0;
    }
    if (err) {
        flags |= F_ERROR;
    }
    err = error_keys(L);
    if (err < 0) {
        return 0;
    }
    if (err) {
        flags |= F_ERROR;
    }

    /* A span record: `span.kind` and a finite `duration_ms`. */
    f->start = NAN;
    if (!is_null(V(K_SPAN_KIND))) {
        double duration;
        int64_t iv = 0;
        int kind = number_value(V(K_DURATION_MS), &duration, &iv);
        if (kind < 0) {
            return 0;
        }
        if ((kind == NUM_INT && iv >= -MAX_EXACT && iv <= MAX_EXACT) ||
            (kind == NUM_FLOAT && duration >= -(double)MAX_EXACT &&
             duration <= (double)MAX_EXACT)) {
            flags |= F_SPAN_RECORD;
            const Value *k = V(K_SPAN_KIND);
            if (k->v[0] == '"') {
                if (!plain_string(k, &s, &n)) {
                    return 0;
                }
                if (n == 6 && memcmp(s, "client", 6) == 0) {
                    flags |= F_KIND_CLIENT;
                }
                else if (n == 6 && memcmp(s, "server", 6) == 0) {
                    flags |= F_KIND_SERVER;
                }
                else if (n == 8 && memcmp(s, "producer", 8) == 0) {
                    flags |= F_KIND_PRODUCER;
                }
            }
            /* The start as text; a number, or `span.start_ns` (which the
             * parser's two paths read differently), declines. */
            const Value *st = V(K_SPAN_START);
            if (!is_null(st)) {
                if (st->v[0] != '"' || !plain_string(st, &s, &n) || !parse_iso(s, n, &f->start)) {
                    return 0;
                }
            }
            else if (!is_null(V(K_span_dot_start_ns))) {
                return 0;
            }
            if (isnan(f->start) && !isnan(f->ts)) {
                f->start = f->ts - duration / 1e3;
            }
        }
    }
    f->flags = flags;
    return 1;
}

/* An object member's key, plain (no escapes), and the colon after it: *pp
 * at the key's opening quote, left at the value. 0 to decline. */
static inline int
member_key(const unsigned char **pp, const unsigned char *end, const unsigned char **key,
           size_t *len)
{
    const unsigned char *p = *pp;
    if (p >= end || *p != '"') {
        return 0;
    }
    const unsigned char *k = ++p;
    p = find_stop(p, end);
    if (p >= end || *p != '"') {
        return 0; /* escapes or odd bytes in a key */
    }
    *key = k;
    *len = (size_t)(p - k);
    p++;
    SKIP_WS(p, end);
    if (p >= end || *p != ':') {
        return 0;
    }
    p++;
    SKIP_WS(p, end);
    *pp = p;
    return 1;
}

/* After a member's value: 1 at the next member's key, 0 past the closing
 * brace, -1 for anything else. */
static inline int
next_member(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    SKIP_WS(p, end);
    if (p < end && *p == ',') {
        p++;
        SKIP_WS(p, end);
        *pp = p;
        return 1;
    }
    if (p < end && *p == '}') {
        *pp = p + 1;
        return 0;
    }
    return -1;
}

/* Parse and check one line; 1 when it is handled here, 0 to decline. */
static int
parse_line(const unsigned char *line, size_t len, Fields *f)
{
    const unsigned char *p = line + 1;
    const unsigned char *end = line + len;
    Keys L;
    L.seen = 0;

    SKIP_WS(p, end);
    if (p < end && *p == '}') {
        p++;
    }
    else {
        for (;;) {
            const unsigned char *k;
            size_t kn;
            if (!member_key(&p, end, &k, &kn)) {
                return 0;
            }
            int id = key_id(k, kn);
            if (id == K_DECLINE) {
                return 0;
            }
            const unsigned char *v = p;
            if (id < N_KEYS) {
                /* A key the Python side decodes: numbers must convert, and
                 * duplicates (the last one wins there) are declined. */
                if (L.seen & ((uint64_t)1 << id)) {
                    return 0;
                }
                L.seen |= (uint64_t)1 << id;
                if (!skip_value(&p, end, 1, 1)) {
                    return 0;
                }
                L.vals[id].v = v;
                L.vals[id].n = (size_t)(p - v);
            }
            else if (!skip_value(&p, end, 1, 0)) {
                return 0;
            }
            int more = next_member(&p, end);
            if (more < 0) {
                return 0;
            }
            if (!more) {
                break;
            }
        }
    }
    if (p != end) {
        return 0;
    }
    f->trace = f->span = f->parent = NULL;
    return record_fields(&L, f);
}

/* ---------------------------------------------------------------- wrappers */

/* Lines a container runtime wrapped, read as _parse.py reads them (its
 * _cri and Docker json-file paths) for the common case only: a whole line
 * whose payload is a JSON record the record parser above takes. A piece of
 * a cut line (CRI `P`, a Docker `log` without its final newline), a line
 * while pieces wait (the caller's `wrapped_ok`), and anything unusual are
 * declined: the Python side keeps the pieces' state. */

/* Flags a wrapped record passes on to its line (_parse.WRAPPED_FLAGS):
 * not JSON, which says how the line itself is written. */
#define F_WRAPPED (F_ERROR | F_SPAN_RECORD | F_KIND_CLIENT | F_KIND_SERVER | F_KIND_PRODUCER)

static int
contains(const unsigned char *s, size_t n, const char *word)
{
    size_t k = strlen(word);
    for (size_t i = 0; k <= n && i <= n - k; i++) {
        if (s[i] == (unsigned char)word[0] && memcmp(s + i, word, k) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A Kubernetes node file line (CRI), `<RFC 3339 time> stdout|stderr F
 * <payload>`, as _wrapped.CRI_HEAD and the check before it in _parse_any
 * (` std` within bytes 19 to 48): the payload's fields, the runtime's time
 * where the payload has none. The line is text (no JSON flag). */
static int
cri_fields(const unsigned char *s, size_t n, Fields *f)
{
    size_t t = 0; /* the time's length: up to the first space */
    while (t < n && t <= 44 && s[t] != ' ') {
        t++;
    }
    if (t < 20 || t > 44 || n < t + 10) {
        return 0;
    }
    /* `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.,\d]*(Z|[+-]\d\d:?\d\d)`: parse_iso
     * checks the digits and fraction; the `T` and the zone's form here. */
    if (s[10] != 'T') {
        return 0;
    }
    const unsigned char *z = s + t;
    int zone = z[-1] == 'Z' || z[-5] == '+' || z[-5] == '-' ||
               ((z[-6] == '+' || z[-6] == '-') && z[-3] == ':');
    double wrapper_ts;
    if (!zone || !parse_iso(s, t, &wrapper_ts)) {
        return 0;
    }
    const unsigned char *h = s + t;
    if (memcmp(h, " stdout F ", 10) != 0 && memcmp(h, " stderr F ", 10) != 0) {
        return 0; /* a `P` piece, or not CRI */
    }
    const unsigned char *payload = h + 10;
    size_t m = n - t - 10;
    if (m < 2 || payload[0] != '{' || payload[m - 1] != '}' || !parse_line(payload, m, f)) {
        return 0;
    }
    if (isnan(f->ts)) {
        f->ts = wrapper_ts;
    }
    f->flags &= F_WRAPPED;
    return 1;
}

/* The JSON string at *pp (its opening quote) unescaped into out, which has
 * room for end - *pp bytes: its length, *pp moved past the closing quote;
 * -1 for a string skip_string declines or anything but ASCII (a \u escape
 * past 0x7f included). Plain runs are found and copied a block at a time. */
static long
unescape_ascii(const unsigned char **pp, const unsigned char *end, unsigned char *out)
{
    const unsigned char *p = *pp + 1;
    size_t j = 0;
    for (;;) {
        const unsigned char *stop = find_stop(p, end);
        memcpy(out + j, p, (size_t)(stop - p));
        j += (size_t)(stop - p);
        p = stop;
        if (p >= end) {
            return -1;
        }
        if (*p == '"') {
            *pp = p + 1;
            return (long)j;
        }
        if (*p != '\\' || p + 1 >= end) {
            return -1; /* a control character or a byte past ASCII */
        }
        unsigned char c = p[1];
        p += 2;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            out[j++] = c;
            break;
        case 'b':
            out[j++] = '\b';
            break;
        case 'f':
            out[j++] = '\f';
            break;
        case 'n':
            out[j++] = '\n';
            break;
        case 'r':
            out[j++] = '\r';
            break;
        case 't':
            out[j++] = '\t';
            break;
        case 'u': {
            if (end - p < 4) {
                return -1;
            }
            int v = 0;
            for (int k = 0; k < 4; k++) {
                int d = hex_value(p[k]);
                if (d < 0) {
                    return -1;
                }
                v = v * 16 + d;
            }
            if (v >= 0x80) {
                return -1;
            }
            out[j++] = (unsigned char)v;
            p += 4;
            break;
        }
        default:
            return -1;
        }
    }
}

/* A Docker json-file record, `{"log": "...\n", "stream": "...", "time":
 * "..."}` (those keys alone, any order; `stream` optional): the fields of
 * the record its `log` holds, unescaped into *scratch (grown as needed),
 * `time` where it has none. The line is JSON, as written. */
static int
docker_fields(const unsigned char *line, size_t len, Fields *f, unsigned char **scratch,
              size_t *scratch_cap)
{
    const unsigned char *p = line + 1;
    const unsigned char *end = line + len;
    Value log = {NULL, 0}, stream = {NULL, 0}, time = {NULL, 0};
    long got = -1; /* the unescaped log's length */
    SKIP_WS(p, end);
    for (;;) {
        const unsigned char *k;
        size_t kn;
        if (!member_key(&p, end, &k, &kn)) {
            return 0;
        }
        Value *slot = kn == 3 && memcmp(k, "log", 3) == 0      ? &log
                      : kn == 6 && memcmp(k, "stream", 6) == 0 ? &stream
                      : kn == 4 && memcmp(k, "time", 4) == 0   ? &time
                                                               : NULL;
        if (slot == NULL || slot->v != NULL) {
            return 0; /* another key (`attrs`...), or one twice */
        }
        const unsigned char *v = p;
        int escaped;
        if (p >= end || *p != '"') {
            return 0;
        }
        if (slot == &log) {
            size_t room = (size_t)(end - p); /* the string unescaped is no longer */
            if (room > *scratch_cap) {
                size_t cap = room < 4096 ? 4096 : room;
                unsigned char *grown = PyMem_RawRealloc(*scratch, cap);
                if (grown == NULL) {
                    return 0; /* the Python path reads it */
                }
                *scratch = grown;
                *scratch_cap = cap;
            }
            got = unescape_ascii(&p, end, *scratch);
            if (got < 0) {
                return 0;
            }
        }
        else if (!skip_string(&p, end, &escaped)) {
            return 0;
        }
        slot->v = v;
        slot->n = (size_t)(p - v);
        int more = next_member(&p, end);
        if (more < 0) {
            return 0;
        }
        if (!more) {
            break;
        }
    }
    const unsigned char *ts_text;
    size_t ts_len;
    double wrapper_ts;
    if (p != end || log.v == NULL || time.v == NULL || !plain_string(&time, &ts_text, &ts_len) ||
        !parse_iso(ts_text, ts_len, &wrapper_ts)) {
        return 0;
    }
    /* A whole line ends with a newline (without it, a piece); the record is
     * the line without its trailing CRs and LFs. */
    if (got < 1 || (*scratch)[got - 1] != '\n') {
        return 0;
    }
    size_t m = (size_t)got;
    while (m > 0 && ((*scratch)[m - 1] == '\n' || (*scratch)[m - 1] == '\r')) {
        m--;
    }
    const unsigned char *payload = *scratch;
    if (m < 2 || payload[0] != '{' || payload[m - 1] != '}' || !parse_line(payload, m, f)) {
        return 0;
    }
    /* A line that joins no trace may hold many records (_batches.MARKERS). */
    if (f->trace == NULL && (contains(line, len, "\"resourceLogs\"") ||
                             contains(line, len, "\"hits\"") || contains(line, len, "\"events\""))) {
        return 0;
    }
    if (isnan(f->ts)) {
        f->ts = wrapper_ts;
    }
    return 1;
}

/* ---------------------------------------------------------------- interning */

/* IDs of one task, interned to local indexes in the order first seen. IDs of
 * the table's width in lowercase hex (nearly all) live in an open-addressing
 * table keyed by their bytes, without a Python object until the end; any
 * other spelling the general parser produces goes to a dict. Both share one
 * counter. */

typedef struct {
    uint32_t tag;  /* high hash bits */
    int32_t index; /* -1: empty slot */
} Slot;

typedef struct {
    Slot *slots;
    size_t mask;
    size_t used;
    size_t width;
    char *keys;      /* by index, `width` bytes each (unused for `other` IDs) */
    size_t keys_cap; /* in IDs */
    int32_t count;   /* indexes handed out */
    PyObject *other; /* dict: other spellings -> index */
} IdTable;

static inline uint64_t
hash_id(const unsigned char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        h = (h ^ load64(s + i)) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 29;
    return h;
}

static inline int
same_key(const char *a, const unsigned char *b, size_t n)
{
    uint64_t diff = 0;
    for (size_t i = 0; i < n; i += 8) {
        diff |= load64((const unsigned char *)a + i) ^ load64(b + i);
    }
    return diff == 0;
}

static int
table_init(IdTable *t, size_t width)
{
    t->width = width;
    t->mask = 4095;
    t->used = 0;
    t->count = 0;
    t->keys_cap = 1024;
    t->keys = PyMem_RawMalloc(t->keys_cap * width);
    t->other = PyDict_New();
    t->slots = PyMem_RawMalloc(sizeof(Slot) * (t->mask + 1));
    if (t->slots == NULL || t->other == NULL || t->keys == NULL) {
        return -1;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        t->slots[i].index = -1;
    }
    return 0;
}

static void
table_free(IdTable *t)
{
    PyMem_RawFree(t->slots);
    t->slots = NULL;
    PyMem_RawFree(t->keys);
    t->keys = NULL;
    Py_CLEAR(t->other);
}

static int
table_grow(IdTable *t)
{
    size_t cap = (t->mask + 1) * 2;
    Slot *slots = PyMem_RawMalloc(sizeof(Slot) * cap);
    if (slots == NULL) {
        return ERR_MEMORY;
    }
    for (size_t i = 0; i < cap; i++) {
        slots[i].index = -1;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        Slot *s = &t->slots[i];
        if (s->index >= 0) {
            const unsigned char *key = (const unsigned char *)t->keys + (size_t)s->index * t->width;
            size_t j = hash_id(key, t->width) & (cap - 1);
            while (slots[j].index >= 0) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = *s;
        }
    }
    PyMem_RawFree(t->slots);
    t->slots = slots;
    t->mask = cap - 1;
    return 0;
}

static PyObject *
set_error(int err)
{
    if (err == ERR_IDS) {
        PyErr_SetString(PyExc_OverflowError, "too many IDs");
    }
    else if (err == ERR_MEMORY) {
        PyErr_NoMemory();
    }
    else if (err == ERR_LINE) {
        PyErr_SetString(PyExc_OverflowError, "line too long or too many lines");
    }
    return NULL;
}

static int
next_index(IdTable *t)
{
    if (t->count == INT32_MAX) {
        return ERR_IDS;
    }
    if ((size_t)t->count == t->keys_cap) {
        char *keys = PyMem_RawRealloc(t->keys, t->keys_cap * 2 * t->width);
        if (keys == NULL) {
            return ERR_MEMORY;
        }
        t->keys = keys;
        t->keys_cap *= 2;
    }
    return t->count++;
}

/* Index of an ID of the table's width in lowercase hex, or an ERR_ code.
 * Needs no GIL (nor sets exceptions): the scan loop runs without it. */
static int32_t
intern_id(IdTable *t, const unsigned char *s)
{
    size_t n = t->width;
    uint64_t h = hash_id(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t j = h & t->mask;
    for (;;) {
        Slot *slot = &t->slots[j];
        if (slot->index < 0) {
            break;
        }
        if (slot->tag == tag && same_key(t->keys + (size_t)slot->index * n, s, n)) {
            return slot->index;
        }
        j = (j + 1) & t->mask;
    }
    int index = next_index(t);
    if (index < 0) {
        return index;
    }
    Slot *slot = &t->slots[j];
    slot->tag = tag;
    slot->index = index;
    memcpy(t->keys + (size_t)index * n, s, n);
    t->used++;
    if (t->used * 2 > t->mask) {
        int err = table_grow(t);
        if (err < 0) {
            return err;
        }
    }
    return index;
}

static int
lower_hex(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Index of a canonical ID given as a str (from the general parser). */
static PyObject *
intern_str(IdTable *t, PyObject *arg)
{
    Py_ssize_t n;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "ID must be a str");
        return NULL;
    }
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) {
        return NULL;
    }
    if ((size_t)n == t->width && lower_hex((const unsigned char *)s, (size_t)n)) {
        int32_t index = intern_id(t, (const unsigned char *)s);
        return index < 0 ? set_error(index) : PyLong_FromLong(index);
    }
    PyObject *found = PyDict_GetItemWithError(t->other, arg);
    if (found != NULL) {
        Py_INCREF(found);
        return found;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    int index = next_index(t);
    if (index < 0) {
        return set_error(index);
    }
    PyObject *value = PyLong_FromLong(index);
    if (value == NULL || PyDict_SetItem(t->other, arg, value) < 0) {
        Py_XDECREF(value);
        return NULL;
    }
    return value;
}

/* All IDs as a list, index -> ID. */
static PyObject *
table_list(IdTable *t)
{
    PyObject *list = PyList_New(t->count);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        Slot *slot = &t->slots[i];
        if (slot->index >= 0) {
            PyObject *key = PyUnicode_FromStringAndSize(t->keys + (size_t)slot->index * t->width,
                                                        (Py_ssize_t)t->width);
            if (key == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, slot->index, key);
        }
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(t->other, &pos, &key, &value)) {
        long index = PyLong_AsLong(value);
        if (index < 0 || index >= t->count || PyList_GET_ITEM(list, index) != NULL) {
            Py_DECREF(list);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_RuntimeError, "inconsistent ID table");
            }
            return NULL;
        }
        Py_INCREF(key);
        PyList_SET_ITEM(list, index, key);
    }
    for (Py_ssize_t i = 0; i < t->count; i++) {
        if (PyList_GET_ITEM(list, i) == NULL) {
            Py_DECREF(list);
            PyErr_SetString(PyExc_RuntimeError, "inconsistent ID table");
            return NULL;
        }
    }
    return list;
}

#define SERVICE_CACHE 8
#define SCRATCH_KEEP ((size_t)1 << 20) /* bytes of Docker scratch kept between lines */

typedef struct {
    char name[200];
    size_t len;
    uint16_t index;
} ServiceSlot;

/* ---------------------------------------------------------------- Scanner */

typedef struct {
    PyObject_HEAD
    PyObject *services;
    IdTable traces;
    IdTable spans;
    ServiceSlot svc[SERVICE_CACHE];
    int nsvc;
    int next_svc;
    int ready;
    int busy;        /* inside scan(): the fallback must not re-enter */
    char *rows;      /* row buffer reused across blocks */
    size_t rows_cap; /* in rows */
    size_t nrows;    /* rows written since the last rows() */
    unsigned char *scratch; /* a Docker record's unescaped line */
    size_t scratch_cap;
} Scanner;

/* A recently seen service's index without the GIL, else -1. */
static int
service_cached(Scanner *self, const unsigned char *s, size_t n)
{
    for (int i = 0; i < self->nsvc; i++) {
        ServiceSlot *slot = &self->svc[i];
        if (slot->len == n && memcmp(slot->name, s, n) == 0) {
            return slot->index;
        }
    }
    return -1;
}

/* A service's index from the shared dict (adding it), with the GIL. */
static int
service_index(Scanner *self, const unsigned char *s, size_t n)
{
    PyObject *key = PyUnicode_FromStringAndSize((const char *)s, (Py_ssize_t)n);
    if (key == NULL) {
        return -1;
    }
    long index;
    PyObject *found = PyDict_GetItemWithError(self->services, key);
    if (found != NULL) {
        index = PyLong_AsLong(found);
    }
    else if (PyErr_Occurred()) {
        index = -1;
    }
    else {
        index = (long)PyDict_GET_SIZE(self->services) - 1;
        if (index > 65535) {
            index = 65535;
        }
        PyObject *value = PyLong_FromLong(index);
        if (value == NULL || PyDict_SetItem(self->services, key, value) < 0) {
            index = -1;
        }
        Py_XDECREF(value);
    }
    Py_DECREF(key);
    if (index < 0 || index > 65535) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "bad service index");
        }
        return -1;
    }
    ServiceSlot *slot = &self->svc[self->next_svc];
    self->next_svc = (self->next_svc + 1) % SERVICE_CACHE;
    if (self->nsvc < SERVICE_CACHE) {
        self->nsvc++;
    }
    memcpy(slot->name, s, n);
    slot->len = n;
    slot->index = (uint16_t)index;
    return (int)index;
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"services", NULL};
    PyObject *services;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyDict_Type, &services)) {
        return -1;
    }
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    if (table_init(&self->traces, 32) < 0 || table_init(&self->spans, 16) < 0) {
        table_free(&self->traces);
        table_free(&self->spans);
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    Py_INCREF(services);
    self->services = services;
    self->nsvc = 0;
    self->next_svc = 0;
    self->ready = 1;
    return 0;
}

static int
Scanner_traverse(Scanner *self, visitproc visit, void *arg)
{
    Py_VISIT(self->services);
    Py_VISIT(self->traces.other);
    Py_VISIT(self->spans.other);
    return 0;
}

static int
Scanner_clear(Scanner *self)
{
    Py_CLEAR(self->services);
    return 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    PyObject_GC_UnTrack(self);
    Scanner_clear(self);
    table_free(&self->traces);
    table_free(&self->spans);
    PyMem_RawFree(self->rows);
    self->rows = NULL;
    PyMem_RawFree(self->scratch);
    self->scratch = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
check_ready(Scanner *self)
{
    if (!self->ready || self->services == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is not initialised");
        return 0;
    }
    if (self->busy == 2) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is in use by another thread");
        return 0;
    }
    return 1;
}

static PyObject *
Scanner_intern_trace(Scanner *self, PyObject *arg)
{
    return check_ready(self) ? intern_str(&self->traces, arg) : NULL;
}

static PyObject *
Scanner_intern_span(Scanner *self, PyObject *arg)
{
    return check_ready(self) ? intern_str(&self->spans, arg) : NULL;
}

static PyObject *
Scanner_traces(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    return check_ready(self) ? table_list(&self->traces) : NULL;
}

static PyObject *
Scanner_spans(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    return check_ready(self) ? table_list(&self->spans) : NULL;
}

/* Row values from the fallback's tuple (ts, trace, span, parent, svc,
 * flags, reason, start), from item `base` on. */
static int
row_from_tuple(PyObject *t, Py_ssize_t base, Row *row)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 8 + base) {
        PyErr_SetString(PyExc_TypeError, "fallback must return an 8-tuple, a list or None");
        return -1;
    }
    long v[6];
    row->ts = PyFloat_AsDouble(PyTuple_GET_ITEM(t, base + 0));
    if (row->ts == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        v[i] = PyLong_AsLong(PyTuple_GET_ITEM(t, base + i + 1));
        if (v[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    row->start = PyFloat_AsDouble(PyTuple_GET_ITEM(t, base + 7));
    if (row->start == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (v[3] < 0 || v[3] > 65535 || v[4] < 0 || v[4] > 255 || v[5] < 0 || v[5] > 255 ||
        v[0] < INT32_MIN || v[0] > INT32_MAX || v[1] < INT32_MIN || v[1] > INT32_MAX ||
        v[2] < INT32_MIN || v[2] > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "fallback row value out of range");
        return -1;
    }
    row->trace = (int32_t)v[0];
    row->span = (int32_t)v[1];
    row->parent = (int32_t)v[2];
    row->svc = (uint16_t)v[3];
    row->flags = (uint8_t)v[4];
    row->reason = (uint8_t)v[5];
    return 0;
}

/* The rows of a line that holds many records (see Scanner_scan): -1 for a
 * bad list (Python error set), -2 out of memory. */
static int
add_records(Scanner *self, PyObject *list, size_t *count, int64_t line_off, size_t line_len,
            int32_t line)
{
    Row row;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *t = PyList_GET_ITEM(list, i);
        if (row_from_tuple(t, 2, &row)) {
            return -1;
        }
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 0));
        Py_ssize_t n = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 1));
        if (PyErr_Occurred()) {
            return -1;
        }
        if (start < 0 || n <= 0 || (size_t)start + (size_t)n > line_len) {
            PyErr_SetString(PyExc_ValueError, "fallback record range out of the line");
            return -1;
        }
        if (*count == self->rows_cap) {
            char *grown = PyMem_RawRealloc(self->rows, self->rows_cap * 2 * ROW_SIZE);
            if (grown == NULL) {
                return -2;
            }
            self->rows = grown;
            self->rows_cap *= 2;
        }
        row.off = line_off + (int64_t)start;
        row.len = (int32_t)n;
        row.line = line;
        memcpy(self->rows + *count * ROW_SIZE, &row, ROW_SIZE);
        (*count)++;
    }
    return 0;
}

PyDoc_STRVAR(Scanner_scan_doc,
             "scan(block, offset, lineno, fallback, pieces=None) -> (rows, newlines)\n\n"
             "Adds rows for the non-blank lines of a block of whole lines (see rows());\n"
             "returns how many and the number of newlines in the block. fallback(start,\n"
             "length) gives the row values of a line handled in Python, None to skip it,\n"
             "a list of (start, length, *row values) for a line of many records, or\n"
             "True for a line that continues the record of the block's last row (the\n"
             "row's length grows to the line's end).\n"
             "pieces: the Python side's pieces of cut lines (true while some wait); with\n"
             "it, whole lines wrapped by a container runtime (CRI, Docker json-file) are\n"
             "read here while none wait. Without it they all go to fallback.");

/* The scan loop runs without the GIL (other threads read the next block
 * meanwhile) and takes it back for what needs Python: a declined line, a
 * service not seen recently, raising an error. */
#define RELEASE()                        \
    do {                                 \
        self->busy = 2;                  \
        tstate = PyEval_SaveThread();    \
    } while (0)
#define ACQUIRE()                        \
    do {                                 \
        PyEval_RestoreThread(tstate);    \
        tstate = NULL;                   \
        self->busy = 1;                  \
    } while (0)

static PyObject *
Scanner_scan(Scanner *self, PyObject *args)
{
    Py_buffer block;
    long long offset;
    long lineno;
    PyObject *fallback;
    PyObject *pieces = Py_None;
    if (!check_ready(self)) {
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.scan is not reentrant");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*LlO|O", &block, &offset, &lineno, &fallback, &pieces)) {
        return NULL;
    }
    /* Wrapped lines are read here only while no piece of a cut line waits
     * on the Python side: a final piece joins them there. */
    int wrapped_ok = 0;
    if (pieces != Py_None) {
        int waiting = PyObject_IsTrue(pieces);
        if (waiting < 0) {
            PyBuffer_Release(&block);
            return NULL;
        }
        wrapped_ok = !waiting;
    }
    if (!PyCallable_Check(fallback)) {
        PyBuffer_Release(&block);
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    if (self->rows == NULL) {
        self->rows = PyMem_RawMalloc(4096 * ROW_SIZE);
        if (self->rows == NULL) {
            PyBuffer_Release(&block);
            return PyErr_NoMemory();
        }
        self->rows_cap = 4096;
    }
    self->busy = 1;
    PyThreadState *tstate = NULL;
    const unsigned char *data = block.buf;
    const unsigned char *end = data + block.len;
    const unsigned char *p = data;
    size_t count = self->nrows;
    const size_t block_rows = count; /* rows before this block's */
    long index = 0;
    Py_ssize_t newlines = 0;
    int err = 0;
    Fields f;
    Row row;

    RELEASE();
    /* A CR not followed by LF ends a line too; the next LF is looked up once
     * per LF, not once per line, so that CR-only text stays linear. */
    const int has_cr = memchr(data, '\r', (size_t)block.len) != NULL;
    const unsigned char *next_lf = NULL;
    int lf_known = 0;
    while (p < end) {
        if (!lf_known || (next_lf != NULL && next_lf < p)) {
            next_lf = memchr(p, '\n', (size_t)(end - p));
            lf_known = 1;
        }
        const unsigned char *nl = next_lf;
        const unsigned char *line_end = nl != NULL ? nl : end;
        if (has_cr) {
            const unsigned char *cr = memchr(p, '\r', (size_t)(line_end - p));
            if (cr != NULL && cr + 1 != nl) {
                nl = line_end = cr;
            }
        }
        size_t len = (size_t)(line_end - p);
        if (len > 0 && p[len - 1] == '\r') {
            len--;
        }
        if (len > 0) {
            if (count == self->rows_cap) {
                char *grown = PyMem_RawRealloc(self->rows, self->rows_cap * 2 * ROW_SIZE);
                if (grown == NULL) {
                    err = ERR_MEMORY;
                    break;
                }
                self->rows = grown;
                self->rows_cap *= 2;
            }
            if (len > 0x7fffffff || (long long)index + lineno + 1 > INT32_MAX) {
                err = ERR_LINE;
                break;
            }
            int handled = 0;
            int read = 0;
            if (p[0] == '{' && p[len - 1] == '}') {
                /* Docker writes `log` first: a record that starts so is tried as Docker first. */
                int docker_first = wrapped_ok && len > 7 && memcmp(p, "{\"log\":", 7) == 0;
                read = (docker_first &&
                        docker_fields(p, len, &f, &self->scratch, &self->scratch_cap)) ||
                       parse_line(p, len, &f) ||
                       (wrapped_ok && !docker_first &&
                        docker_fields(p, len, &f, &self->scratch, &self->scratch_cap));
            }
            else if (wrapped_ok && is_digit(p[0])) {
                read = cri_fields(p, len, &f);
            }
            if (read) {
                int32_t trace = -1, span = -1, parent = -1;
                if (f.trace != NULL) {
                    trace = intern_id(&self->traces, f.trace);
                    if (trace < 0) {
                        err = trace;
                        break;
                    }
                    if (f.span != NULL) {
                        span = intern_id(&self->spans, f.span);
                        if (span < 0) {
                            err = span;
                            break;
                        }
                    }
                    if (f.parent != NULL) {
                        parent = intern_id(&self->spans, f.parent);
                        if (parent < 0) {
                            err = parent;
                            break;
                        }
                    }
                }
                int svc = 0;
                if (f.service != NULL) {
                    svc = service_cached(self, f.service, f.service_len);
                    if (svc < 0) {
                        ACQUIRE();
                        svc = service_index(self, f.service, f.service_len);
                        if (svc < 0) {
                            err = ERR_PYTHON;
                            break;
                        }
                        RELEASE();
                    }
                }
                row.ts = f.ts;
                row.trace = trace;
                row.span = span;
                row.parent = parent;
                row.svc = (uint16_t)svc;
                row.flags = f.flags;
                row.reason = trace < 0 ? R_NO_TRACE_ID : 0;
                row.start = f.start;
                handled = 1;
            }
            else {
                ACQUIRE();
                PyObject *got = PyObject_CallFunction(fallback, "nn", (Py_ssize_t)(p - data),
                                                      (Py_ssize_t)len);
                if (got == NULL) {
                    err = ERR_PYTHON;
                    break;
                }
                if (PyList_Check(got)) {
                    /* One line, many records: (start, length, *row values) each,
                     * a byte range of the line. */
                    int bad = add_records(self, got, &count, (int64_t)offset + (int64_t)(p - data),
                                          len, (int32_t)(index + lineno + 1));
                    Py_DECREF(got);
                    if (bad) {
                        err = bad == -2 ? ERR_MEMORY : ERR_PYTHON;
                        break;
                    }
                }
                else if (got == Py_True) {
                    /* The line continues the text record of the block's last
                     * row: the row's byte range grows to its end. */
                    Py_DECREF(got);
                    int64_t line_end = (int64_t)offset + (int64_t)(p - data) + (int64_t)len;
                    Row last;
                    if (count <= block_rows) {
                        PyErr_SetString(PyExc_ValueError, "no row in the block to continue");
                        err = ERR_PYTHON;
                        break;
                    }
                    memcpy(&last, self->rows + (count - 1) * ROW_SIZE, ROW_SIZE);
                    if (line_end - last.off > 0x7fffffff) {
                        err = ERR_LINE;
                        break;
                    }
                    last.len = (int32_t)(line_end - last.off);
                    memcpy(self->rows + (count - 1) * ROW_SIZE, &last, ROW_SIZE);
                }
                else if (got != Py_None) {
                    int bad = row_from_tuple(got, 0, &row);
                    Py_DECREF(got);
                    if (bad) {
                        err = ERR_PYTHON;
                        break;
                    }
                    handled = 1;
                }
                else {
                    Py_DECREF(got);
                }
                if (pieces != Py_None) {
                    int waiting = PyObject_IsTrue(pieces);
                    if (waiting < 0) {
                        err = ERR_PYTHON;
                        break;
                    }
                    wrapped_ok = !waiting;
                }
                RELEASE();
            }
            if (self->scratch_cap > SCRATCH_KEEP) {
                /* A very long Docker record's buffer is not kept for the next. */
                PyMem_RawFree(self->scratch);
                self->scratch = NULL;
                self->scratch_cap = 0;
            }
            if (handled) {
                row.off = (int64_t)offset + (int64_t)(p - data);
                row.len = (int32_t)len;
                row.line = (int32_t)(index + lineno + 1);
                memcpy(self->rows + count * ROW_SIZE, &row, ROW_SIZE);
                count++;
            }
        }
        index++;
        if (nl == NULL) {
            break;
        }
        newlines++;
        p = nl + 1;
    }
    if (tstate != NULL) {
        ACQUIRE();
    }
    self->busy = 0;
    PyObject *result = NULL;
    if (err < 0) {
        set_error(err);
    }
    else {
        result = Py_BuildValue("(nn)", (Py_ssize_t)(count - self->nrows), newlines);
        self->nrows = count;
    }
    PyBuffer_Release(&block);
    return result;
}

#undef RELEASE
#undef ACQUIRE

static PyObject *
Scanner_rows(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_ready(self)) {
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is scanning");
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(self->rows ? self->rows : "",
                                                  (Py_ssize_t)(self->nrows * ROW_SIZE));
    if (out != NULL) {
        self->nrows = 0;
    }
    return out;
}

PyDoc_STRVAR(parse_doc,
             "parse(line) -> tuple | None\n\n"
             "The fields of one line as the scanner reads it (trace, span, parent, ts,\n"
             "service, flags, start), or None when the line is left to Python.");

static PyObject *
py_parse(PyObject *module, PyObject *arg)
{
    Py_buffer buf;
    Fields f;
    (void)module;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *s = buf.buf;
    size_t n = (size_t)buf.len;
    if (n < 2 || s[0] != '{' || s[n - 1] != '}' || !parse_line(s, n, &f)) {
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    PyObject *r = Py_BuildValue(
        "(s#s#s#ds#id)", (const char *)f.trace, (Py_ssize_t)(f.trace ? 32 : 0),
        (const char *)f.span, (Py_ssize_t)(f.span ? 16 : 0), (const char *)f.parent,
        (Py_ssize_t)(f.parent ? 16 : 0), f.ts, (const char *)f.service,
        (Py_ssize_t)f.service_len, (int)f.flags, f.start);
    PyBuffer_Release(&buf);
    return r;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, Scanner_scan_doc},
    {"intern_trace", (PyCFunction)Scanner_intern_trace, METH_O,
     PyDoc_STR("Local index of a canonical trace ID (from the general parser).")},
    {"intern_span", (PyCFunction)Scanner_intern_span, METH_O,
     PyDoc_STR("Local index of a canonical span ID (from the general parser).")},
    {"traces", (PyCFunction)Scanner_traces, METH_NOARGS,
     PyDoc_STR("Trace IDs by local index.")},
    {"spans", (PyCFunction)Scanner_spans, METH_NOARGS, PyDoc_STR("Span IDs by local index.")},
    {"rows", (PyCFunction)Scanner_rows, METH_NOARGS,
     PyDoc_STR("The rows written since the last call (SCAN_DTYPE bytes), then forgets them.")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "logtrace.stitch._native_scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("Per-task scanning state: the interned IDs' fast lookup tables."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_methods = Scanner_methods,
};

static PyMethodDef module_methods[] = {
    {"parse", (PyCFunction)py_parse, METH_O, parse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "logtrace.stitch._native_scan",
    "C fast path of the stitcher's scan stage.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* KEYS: the key names read from a line; DECLINED: those that send a line
 * to Python on sight. For the test that compares them with the parser's. */
static int
add_key_names(PyObject *m, const char *attr, int declined)
{
    PyObject *keys = PyList_New(0);
    if (keys == NULL) {
        return -1;
    }
    for (size_t i = 0; i < N_KEY_NAMES; i++) {
        if ((KEY_NAMES[i].id == K_DECLINE) != declined) {
            continue;
        }
        PyObject *name = PyUnicode_FromString(KEY_NAMES[i].name);
        if (name == NULL || PyList_Append(keys, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(keys);
            return -1;
        }
        Py_DECREF(name);
    }
    PyObject *tuple = PyList_AsTuple(keys);
    Py_DECREF(keys);
    if (tuple == NULL || PyModule_AddObject(m, attr, tuple) < 0) {
        Py_XDECREF(tuple);
        return -1;
    }
    return 0;
}

static int
add_keys(PyObject *m)
{
    return add_key_names(m, "KEYS", 0) < 0 || add_key_names(m, "DECLINED", 1) < 0 ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__native_scan(void)
{
    init_tables();
    init_keys();
#if defined(__GLIBC__)
    if (c_locale == (locale_t)0) {
        c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    }
#endif
    if (PyType_Ready(&ScannerType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0 ||
        PyModule_AddIntConstant(m, "ROW_SIZE", ROW_SIZE) < 0 || add_keys(m) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
