/* A native leak for the tests: each call keeps `bytes` of malloc'd memory, written so
 * that its pages are resident, and never frees it. No Python object refers to it. */
#include <stdlib.h>
#include <string.h>

static void **kept;
static size_t count, capacity;

/* `bytes` of malloc'd memory, written (resident), remembered in `kept`. */
static void *keep(size_t bytes) {
    if (count == capacity) {
        capacity = capacity ? 2 * capacity : 64;
        kept = realloc(kept, capacity * sizeof *kept);
    }
    void *p = malloc(bytes);
    memset(p, 1, bytes);
    return kept[count++] = p;
}

size_t keep_bytes(size_t bytes) {
    keep(bytes);
    return count;
}

/* Allocator retention for the tests: `total` bytes in blocks of `block` bytes, written,
 * then each shrunk in place to 64 bytes (realloc): glibc frees each block's tail, a hole
 * between two small live heads that it can neither merge nor return to the OS. Called
 * with a larger `block` each time, the holes of earlier calls are too small to reuse.
 * Returns the bytes left in use. */
size_t fragment(size_t total, size_t block) {
    size_t n = total / block, in_use = 0;
    for (size_t i = 0; i < n; i++)
        keep(block);
    for (size_t i = count - n; i < count; i++) {
        kept[i] = realloc(kept[i], 64);
        in_use += 64;
    }
    return in_use;
}
