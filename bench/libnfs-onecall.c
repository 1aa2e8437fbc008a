/*
 * libnfs-onecall: one phase of nfsbench's one-call-in-flight metadata
 * workloads, made through libnfs's synchronous API, a client no one here
 * wrote. Each libnfs call returns before the next is made, as for a CMS or
 * a build tool working through libnfs; calls are path-based, so libnfs
 * walks the path from the mount root on every call that takes one.
 *
 *   libnfs-onecall URL PHASE DIR N DURATION_MS
 *
 * URL    nfs://host/export?nfsport=P&mountport=P&... (libnfs URL syntax)
 * PHASE  create | stat | getattr | setattr | rename | remove | mkdir |
 *        rmdir | readdir; the phases run in this order over the same N
 *        names in DIR (a path from the export's root), one process each
 * N      files (readdir: the entries DIR must hold, named e0000000...)
 * DURATION_MS  readdir only: list DIR again until this much time passed
 *
 * Prints one JSON line (ops, seconds, p50_us, p99_us, note) and exits 0;
 * on an NFS error or wrong data it prints the reason on stderr and exits
 * 1. Only the calls being measured are timed; set-up (opening files for
 * getattr) and checks (reading data back, listing DIR empty) are not.
 * Just before the first measured call it prints "start" and waits for a
 * line on stdin, and just after the last one "end", likewise, so that
 * nfsbench can read the server's CPU time and call counters around
 * exactly the measured calls (the mount and the checks excluded).
 *
 * Built by `make bench-bin` (cc ... -lnfs, libnfs-dev from Debian).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nfsc/libnfs.h>

#define BLK 4096

static struct nfs_context *nfs;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("libnfs-onecall: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* dienfs reports a failed libnfs call with libnfs's own message. */
static void dienfs(const char *what, const char *path, int rc)
{
	die("%s %s: %s (%s)", what, path, strerror(-rc), nfs_get_error(nfs));
}

/* mark tells nfsbench where the measured calls start and end, and waits
 * until it has taken its readings. */
static void mark(const char *what)
{
	char line[16];
	printf("%s\n", what);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		die("stdin closed at %s", what);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* lat holds one latency (seconds) per measured operation. */
static double *lat;
static long nlat, caplat;

static void record(double t0)
{
	if (nlat == caplat) {
		caplat = caplat ? 2 * caplat : 1024;
		lat = realloc(lat, caplat * sizeof *lat);
		if (!lat)
			die("out of memory");
	}
	lat[nlat++] = now() - t0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* pct uses the same rank as nfsbench's percentiles(). */
static double pct(double q)
{
	if (nlat == 0)
		return 0;
	return lat[(long)(q * (nlat - 1))] * 1e6;
}

static void report(long ops, double secs, const char *note)
{
	qsort(lat, nlat, sizeof *lat, cmpd);
	printf("{\"ops\":%ld,\"seconds\":%.6f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"note\":\"%s\"}\n",
	       ops, secs, pct(0.50), pct(0.99), note);
}

/* fill is file i's content: its number, then bytes derived from it, so a
 * file read back with another file's data (or none) is caught. */
static void fill(unsigned char *buf, long i)
{
	for (int j = 0; j < BLK; j++)
		buf[j] = (unsigned char)(i * 131 + j * 7 + (j >> 8));
	snprintf((char *)buf, 48, "libnfs-onecall file %ld", i);
}

static char *name(const char *dir, char kind, long i)
{
	static char p[4096];
	snprintf(p, sizeof p, "%s/%c%07ld", dir, kind, i);
	return p;
}

/* count lists dir and returns how many entries it has besides . and .. */
static long count(const char *dir)
{
	struct nfsdir *d;
	int rc = nfs_opendir(nfs, dir, &d);
	if (rc < 0)
		dienfs("opendir", dir, rc);
	long n = 0;
	struct nfsdirent *e;
	while ((e = nfs_readdir(nfs, d)) != NULL)
		if (strcmp(e->name, ".") && strcmp(e->name, ".."))
			n++;
	nfs_closedir(nfs, d);
	return n;
}

static void check_empty(const char *dir, const char *after)
{
	long n = count(dir);
	if (n != 0)
		die("%s still lists %ld entries after %s", dir, n, after);
}

static void check_file(const char *path, const struct nfs_stat_64 *st, uint64_t mode)
{
	if (!S_ISREG(st->nfs_mode) || st->nfs_size != BLK)
		die("%s: mode %" PRIo64 " size %" PRIu64 ", want a regular file of %d bytes",
		    path, st->nfs_mode, st->nfs_size, BLK);
	if (mode && (st->nfs_mode & 07777) != mode)
		die("%s: mode %04" PRIo64 ", want %04" PRIo64, path, st->nfs_mode & 07777, mode);
}

static void create(const char *dir, long n)
{
	unsigned char buf[BLK];
	mark("start");
	for (long i = 0; i < n; i++) {
		char *p = name(dir, 'f', i);
		struct nfsfh *fh;
		fill(buf, i);
		double t0 = now();
		int rc = nfs_creat(nfs, p, 0644, &fh);
		if (rc < 0)
			dienfs("creat", p, rc);
		rc = nfs_write(nfs, fh, BLK, buf);
		if (rc != BLK)
			dienfs("write", p, rc < 0 ? rc : -EIO);
		rc = nfs_close(nfs, fh);
		if (rc < 0)
			dienfs("close", p, rc);
		record(t0);
	}
	mark("end");
}

static void stat_files(const char *dir, long n)
{
	mark("start");
	for (long i = 0; i < n; i++) {
		char *p = name(dir, 'f', i);
		struct nfs_stat_64 st;
		double t0 = now();
		int rc = nfs_stat64(nfs, p, &st);
		if (rc < 0)
			dienfs("stat", p, rc);
		record(t0);
		check_file(p, &st, 0);
	}
	mark("end");
}

/* getattr: fstat of files already open (GETATTR of a handle libnfs
 * holds); opening them first, and reading each one's data back to check
 * it, are not timed. */
static void getattr(const char *dir, long n)
{
	struct nfsfh **fhs = calloc(n, sizeof *fhs);
	unsigned char want[BLK], got[BLK];
	if (!fhs)
		die("out of memory");
	for (long i = 0; i < n; i++) {
		char *p = name(dir, 'f', i);
		int rc = nfs_open(nfs, p, O_RDONLY, &fhs[i]);
		if (rc < 0)
			dienfs("open", p, rc);
		rc = nfs_pread(nfs, fhs[i], 0, BLK, got);
		if (rc != BLK)
			dienfs("pread", p, rc < 0 ? rc : -EIO);
		fill(want, i);
		if (memcmp(got, want, BLK))
			die("%s: data read back differs from what was written", p);
	}
	mark("start");
	for (long i = 0; i < n; i++) {
		struct nfs_stat_64 st;
		double t0 = now();
		int rc = nfs_fstat64(nfs, fhs[i], &st);
		if (rc < 0)
			dienfs("fstat", name(dir, 'f', i), rc);
		record(t0);
		check_file(name(dir, 'f', i), &st, 0);
	}
	mark("end");
	for (long i = 0; i < n; i++)
		nfs_close(nfs, fhs[i]);
	free(fhs);
}

static void setattr(const char *dir, long n)
{
	mark("start");
	for (long i = 0; i < n; i++) {
		char *p = name(dir, 'f', i);
		double t0 = now();
		int rc = nfs_chmod(nfs, p, 0600);
		if (rc < 0)
			dienfs("chmod", p, rc);
		record(t0);
	}
	mark("end");
	/* Not timed: the change is there. */
	for (long i = 0; i < n; i += 16) {
		char *p = name(dir, 'f', i);
		struct nfs_stat_64 st;
		int rc = nfs_stat64(nfs, p, &st);
		if (rc < 0)
			dienfs("stat", p, rc);
		check_file(p, &st, 0600);
	}
}

static void rename_files(const char *dir, long n)
{
	mark("start");
	for (long i = 0; i < n; i++) {
		char from[4096];
		snprintf(from, sizeof from, "%s", name(dir, 'f', i));
		char *to = name(dir, 'r', i);
		double t0 = now();
		int rc = nfs_rename(nfs, from, to);
		if (rc < 0)
			dienfs("rename", from, rc);
		record(t0);
	}
	mark("end");
}

/* each times call(path) on the n names of one kind in dir. */
static void each(const char *dir, long n, char kind, const char *what,
		 int (*call)(struct nfs_context *, const char *))
{
	mark("start");
	for (long i = 0; i < n; i++) {
		char *p = name(dir, kind, i);
		double t0 = now();
		int rc = call(nfs, p);
		if (rc < 0)
			dienfs(what, p, rc);
		record(t0);
	}
	mark("end");
}

/* remove takes the names rename gave, so a rename that did not happen
 * fails here. */
static void remove_files(const char *dir, long n)
{
	each(dir, n, 'r', "unlink", nfs_unlink);
	check_empty(dir, "remove");
}

static void mkdirs(const char *dir, long n)
{
	each(dir, n, 'd', "mkdir", nfs_mkdir);
	long got = count(dir);
	if (got != n)
		die("%s lists %ld entries after %ld mkdirs", dir, got, n);
}

static void rmdirs(const char *dir, long n)
{
	each(dir, n, 'd', "rmdir", nfs_rmdir);
	check_empty(dir, "rmdir");
}

/* list reads dir completely (opendir reads every page with READDIRPLUS)
 * and checks it holds exactly e0000000..e(n-1), each once. */
static void list(const char *dir, long n, unsigned char *seen)
{
	memset(seen, 0, n);
	struct nfsdir *d;
	double t0 = now();
	int rc = nfs_opendir(nfs, dir, &d);
	if (rc < 0)
		dienfs("opendir", dir, rc);
	long got = 0;
	struct nfsdirent *e;
	while ((e = nfs_readdir(nfs, d)) != NULL) {
		if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
			continue;
		char *end;
		long k = e->name[0] == 'e' ? strtol(e->name + 1, &end, 10) : -1;
		if (k < 0 || k >= n || *end || seen[k])
			die("%s: unexpected or repeated entry %s", dir, e->name);
		seen[k] = 1;
		got++;
	}
	nfs_closedir(nfs, d);
	record(t0);
	if (got != n)
		die("%s: listed %ld entries, want %ld", dir, got, n);
}

/* listings lists dir again and again for durms milliseconds (at least
 * once); the operations counted are the entries listed. */
static long durms, listed;

static void listings(const char *dir, long n)
{
	unsigned char *seen = malloc(n);
	if (!seen)
		die("out of memory");
	mark("start");
	double t0 = now();
	do {
		list(dir, n, seen);
		listed += n;
	} while ((now() - t0) * 1000 < durms);
	mark("end");
	free(seen);
}

static const struct phase {
	const char *name, *note;
	void (*run)(const char *dir, long n);
} phases[] = {
	{"create", "nfs_creat + nfs_write 4 KiB + nfs_close", create},
	{"stat", "nfs_stat64 of a path", stat_files},
	{"getattr", "nfs_fstat64 of an open file", getattr},
	{"setattr", "nfs_chmod of a path", setattr},
	{"rename", "nfs_rename within a directory", rename_files},
	{"remove", "nfs_unlink", remove_files},
	{"mkdir", "nfs_mkdir", mkdirs},
	{"rmdir", "nfs_rmdir", rmdirs},
	{"readdir", "nfs_opendir + nfs_readdir of every entry; ops = entries, latency per listing", listings},
};

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: libnfs-onecall URL PHASE DIR N DURATION_MS\n");
		return 2;
	}
	const char *url = argv[1], *phase = argv[2], *dir = argv[3];
	long n = atol(argv[4]);
	durms = atol(argv[5]);
	if (n <= 0)
		die("N must be positive");
	const struct phase *ph = NULL;
	for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
		if (!strcmp(phase, phases[i].name))
			ph = &phases[i];
	if (!ph)
		die("unknown phase %s", phase);
	nfs = nfs_init_context();
	if (!nfs)
		die("nfs_init_context failed");
	struct nfs_url *u = nfs_parse_url_dir(nfs, url);
	if (!u)
		die("bad URL %s: %s", url, nfs_get_error(nfs));
	if (nfs_mount(nfs, u->server, u->path) != 0)
		die("mount %s:%s: %s", u->server, u->path, nfs_get_error(nfs));

	ph->run(dir, n);
	/* Throughput counts only the measured calls, not the checks. */
	double secs = 0;
	for (long i = 0; i < nlat; i++)
		secs += lat[i];
	report(listed ? listed : n, secs, ph->note);
	nfs_umount(nfs);
	nfs_destroy_url(u);
	nfs_destroy_context(nfs);
	return 0;
}
