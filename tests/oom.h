/*
 * oom.h - a malloc that fails when told to, for the tests that run a
 * call again and again with one of its allocations failing (unit/test_oom,
 * pam/test_pam_oom).  Included by one file of a program: its malloc,
 * calloc and realloc stand in for the C library's for every shared
 * object of the process, and pass on to glibc's own (__libc_malloc ...).
 *
 *   arm(n)     the n-th allocation from now fails (-1: count them only)
 *   disarm()   whether it came; allocations succeed again
 *   counted    allocations since arm()
 *   problem()  report a run that broke the rule, counted in problems
 *
 * OE_OWN_ALLOCATOR is defined, and nothing else, when AddressSanitizer
 * brings its own allocator, which this cannot stand in for: the test
 * then only says it is skipped.
 */
#ifndef OE_TEST_OOM_H
#define OE_TEST_OOM_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#if defined(__SANITIZE_ADDRESS__)
#define OE_OWN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OE_OWN_ALLOCATOR 1
#endif
#endif

#ifndef OE_OWN_ALLOCATOR

static long fail_at;  /* the allocation to fail, counted from arm(); 0 or -1: none */
static long counted;  /* allocations since arm() */
static bool hit;      /* the one to fail came */

/* Where a debugger stops to see who asked: `break oom_here`. */
__attribute__((noinline)) static void
oom_here(void)
{
	__asm__ volatile("");
}

static bool
fails_now(void)
{
	if (fail_at == 0)
		return false;
	/* -1 counts them, failing none. */
	if (__atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED) != fail_at)
		return false;
	hit = true;
	oom_here();
	errno = ENOMEM;
	return true;
}

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

void *
malloc(size_t n)
{
	return fails_now() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	return fails_now() ? NULL : __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	/* realloc(p, 0) frees: not an allocation that can fail. */
	return n != 0 && fails_now() ? NULL : __libc_realloc(p, n);
}

static void
arm(long n)
{
	counted = 0;
	hit = false;
	fail_at = n;
}

/* Whether the failure came; allocations succeed again. */
static bool
disarm(void)
{
	fail_at = 0;
	return hit;
}

static int problems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
problem(const char *fmt, ...)
{
	extern char *program_invocation_short_name;
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	problems++;
}

#endif /* !OE_OWN_ALLOCATOR */
#endif
