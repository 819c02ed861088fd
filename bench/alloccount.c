/* Allocation counter for bench/run.sh, loaded with LD_PRELOAD into the process under test.
 *
 * Counts calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign (the
 * "allocations"), free, and the bytes requested, with relaxed atomics; forwards every call to glibc's
 * own implementation (__libc_*), so no dlsym and no recursion. A background thread writes the totals
 * every 10 ms to the file named by ALLOCCOUNT_FILE ("allocs frees bytes\n", rewritten in place), so
 * the benchmark reads them before and after a measured window without signals or stopping the
 * process. Build: cc -O2 -shared -fPIC -o alloccount.so alloccount.c -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocs, frees, bytes;

static inline void count(size_t n) {
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
}

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t m, size_t n) { count(m * n); return __libc_calloc(m, n); }
void *realloc(void *p, size_t n) {
  /* realloc(NULL, n) is a malloc; realloc(p, 0) a free; any other call a new block for the counter:
   * it may move, and it is a call into the allocator either way. */
  if (p && n == 0) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
  else count(n);
  return __libc_realloc(p, n);
}
void free(void *p) {
  if (p) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
  __libc_free(p);
}
void *memalign(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
  if (a % sizeof(void *) != 0 || (a & (a - 1)) != 0) return EINVAL;
  count(n);
  void *p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

static void *writer(void *path) {
  int fd = open((const char *)path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return NULL;
  char line[96];
  struct timespec tick = {0, 10 * 1000 * 1000};
  for (;;) {
    int n = snprintf(line, sizeof line, "%lu %lu %lu\n",
                     atomic_load_explicit(&allocs, memory_order_relaxed),
                     atomic_load_explicit(&frees, memory_order_relaxed),
                     atomic_load_explicit(&bytes, memory_order_relaxed));
    /* Padded to a fixed width so that a reader never sees the tail of a longer earlier line. */
    memset(line + n - 1, ' ', sizeof line - n);
    line[sizeof line - 2] = '\n';
    (void)pwrite(fd, line, sizeof line - 1, 0);
    nanosleep(&tick, NULL);
  }
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  const char *path = getenv("ALLOCCOUNT_FILE");
  if (!path || !*path) return;
  char *copy = strdup(path);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_create(&t, &attr, writer, copy);
  pthread_attr_destroy(&attr);
  /* Child processes (none expected) must not inherit the writer. */
  unsetenv("ALLOCCOUNT_FILE");
  unsetenv("LD_PRELOAD");
}
