/* logtrace grep's byte search: the first place a needle occurs in a buffer.
 *
 * bytes.find and mmap.find search a few gigabytes a second; the C library's
 * memmem, tuned per CPU, several times more. Nothing else: grep loads this
 * module and no other of the stitcher's extensions, so its start stays light.
 */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>

#include <string.h>

#if defined(_WIN32)
static const char *
search(const char *hay, size_t size, const char *needle, size_t n)
{
    /* No memmem here: the first byte by memchr, the rest by memcmp. */
    const char *end = hay + size;
    if (n == 0)
        return hay;
    while (size >= n) {
        const char *at = memchr(hay, needle[0], size - n + 1);
        if (at == NULL)
            return NULL;
        if (memcmp(at, needle, n) == 0)
            return at;
        hay = at + 1;
        size = (size_t)(end - hay);
    }
    return NULL;
}
#else
static const char *
search(const char *hay, size_t size, const char *needle, size_t n)
{
    return memmem(hay, size, needle, n);
}
#endif

PyDoc_STRVAR(find_doc,
"find(data, needle, start, stop) -> int\n\n"
"The first offset in data[start:stop] where needle begins, or -1: what\n"
"data.find(needle, start, stop) returns, for any buffer (bytes, mmap) and\n"
"offsets from the start (none counts from the end).");

static PyObject *
find(PyObject *self, PyObject *args)
{
    Py_buffer data, needle;
    Py_ssize_t start, stop, found = -1;
    if (!PyArg_ParseTuple(args, "y*y*nn", &data, &needle, &start, &stop))
        return NULL;
    if (start < 0)
        start = 0;
    if (stop > data.len)
        stop = data.len;
    if (stop - start >= needle.len && start <= data.len) {
        const char *base = (const char *)data.buf;
        const char *at;
        Py_BEGIN_ALLOW_THREADS
        at = search(base + start, (size_t)(stop - start), (const char *)needle.buf,
                    (size_t)needle.len);
        Py_END_ALLOW_THREADS
        if (at != NULL)
            found = at - base;
    }
    PyBuffer_Release(&needle);
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(found);
}

static PyMethodDef methods[] = {
    {"find", find, METH_VARARGS, find_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_native_find",
    "logtrace grep's byte search (memmem).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__native_find(void)
{
    return PyModule_Create(&module);
}
