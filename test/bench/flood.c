/*
 * flood: N clients, one connection and one thread each, running one
 * statement in a loop the way an application's retry logic would: when the
 * server turns a statement away with a retryable error (SQLSTATE class 53)
 * and a hint "Retry after N ms.", the client sleeps that long (capped) and
 * sends the statement again.  Used by scripts/demo.sh and
 * test/bench/protection.sh (through test/bench/protection-lib.sh).
 *
 *   flood -d CONNINFO -c CLIENTS -q QUERY [-T SECONDS] [-m MAX_SLEEP_MS]
 *         [-e ERRFILE] [-r READYFILE]
 *
 * Writes "ready" to READYFILE (a fifo the caller reads) once every client is
 * connected, runs until
 * SIGTERM or SIGINT (or for SECONDS), then prints "key value" lines:
 * completed, shed (53S03), rejected (other 53Sxx), retried, errors (any
 * other error), and the client-measured latency (send to answer, ms) of
 * statements turned away at once (every 53Sxx but 53S02: reject_n,
 * reject_p50_ms, reject_p99_ms, reject_max_ms), of queue timeouts (53S02,
 * which answer after waiting by design: timeout_n, timeout_p99_ms) and of
 * completed statements (done_p50_ms, done_p99_ms).
 * Counts stop when the stop signal arrives; statements still running are
 * then canceled.  ERRFILE receives one error a client got (a 53S03 if there
 * was one, otherwise the first 53Sxx): SQLSTATE, message, detail, hint.
 *
 * Build: cc -O2 -o flood flood.c -I$(pg_config --includedir) -lpq -lpthread
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

typedef struct
{
	PGconn	   *conn;
	PGcancel   *cancel;
	pthread_t	thread;
	double	   *rej;			/* latencies of turned-away statements, ms */
	size_t		nrej, caprej;
	double	   *done;			/* latencies of completed statements, ms */
	size_t		ndone, capdone;
	double	   *tmo;			/* latencies of queue timeouts (53S02), ms */
	size_t		ntmo, captmo;
} client_t;

static const char *query;
static int	max_sleep_ms = 1000;
static atomic_int stop;
static atomic_long n_completed, n_shed, n_rejected, n_retried, n_errors;

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char err_state[6];
static char *err_text;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
push(double **a, size_t *n, size_t *cap, double v)
{
	if (*n == *cap)
	{
		*cap = *cap ? *cap * 2 : 1024;
		*a = realloc(*a, *cap * sizeof(double));
		if (*a == NULL)
		{
			perror("flood: realloc");
			exit(1);
		}
	}
	(*a)[(*n)++] = v;
}

static void
keep_error(const PGresult *res, const char *state)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	size_t		len;

	pthread_mutex_lock(&err_lock);
	if (err_text == NULL || (strcmp(state, "53S03") == 0 && strcmp(err_state, "53S03") != 0))
	{
		free(err_text);
		len = strlen(state) + strlen(msg ? msg : "") + strlen(detail ? detail : "") +
			strlen(hint ? hint : "") + 64;
		err_text = malloc(len);
		snprintf(err_text, len, "SQLSTATE: %s\nERROR:    %s\nDETAIL:   %s\nHINT:     %s\n",
				 state, msg ? msg : "", detail ? detail : "(none)", hint ? hint : "(none)");
		memcpy(err_state, state, 6);
	}
	pthread_mutex_unlock(&err_lock);
}

/* Sleep ms milliseconds, or until told to stop. */
static void
nap(int ms)
{
	double		until = now_ms() + ms;
	double		left;

	while (!atomic_load(&stop) && (left = until - now_ms()) > 0)
	{
		struct timespec ts;

		if (left > 20)
			left = 20;
		ts.tv_sec = 0;
		ts.tv_nsec = (long) (left * 1e6);
		nanosleep(&ts, NULL);
	}
}

static void *
run(void *arg)
{
	client_t   *c = arg;

	while (!atomic_load(&stop))
	{
		double		t0 = now_ms();
		PGresult   *res = PQexec(c->conn, query);
		double		t1 = now_ms();

		if (atomic_load(&stop))
		{
			PQclear(res);
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			atomic_fetch_add(&n_completed, 1);
			push(&c->done, &c->ndone, &c->capdone, t1 - t0);
		}
		else
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
			int			wait_ms = 100;

			if (state && strncmp(state, "53S", 3) == 0)
			{
				atomic_fetch_add(strcmp(state, "53S03") == 0 ? &n_shed : &n_rejected, 1);
				if (strcmp(state, "53S02") == 0)
					push(&c->tmo, &c->ntmo, &c->captmo, t1 - t0);
				else
					push(&c->rej, &c->nrej, &c->caprej, t1 - t0);
				keep_error(res, state);
			}
			else
			{
				atomic_fetch_add(&n_errors, 1);
				if (atomic_load(&n_errors) <= 3)
					fprintf(stderr, "flood: %s", PQerrorMessage(c->conn));
			}
			if (PQstatus(c->conn) != CONNECTION_OK)
			{
				fprintf(stderr, "flood: connection lost: %s", PQerrorMessage(c->conn));
				PQclear(res);
				break;
			}
			if (hint)
				sscanf(hint, "Retry after %d ms.", &wait_ms);
			if (wait_ms > max_sleep_ms)
				wait_ms = max_sleep_ms;
			PQclear(res);
			nap(wait_ms);
			if (!atomic_load(&stop))
				atomic_fetch_add(&n_retried, 1);
			continue;
		}
		PQclear(res);
	}
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double *
values(client_t *c, int which, size_t *n)
{
	*n = which == 0 ? c->nrej : which == 1 ? c->ndone : c->ntmo;
	return which == 0 ? c->rej : which == 1 ? c->done : c->tmo;
}

/*
 * Percentile p (0..1), nearest rank, of the values of every client: which
 * is 0 for rejections, 1 for completions, 2 for queue timeouts.
 */
static double
pct(client_t *cl, int n, int which, double p, size_t *count)
{
	size_t		total = 0, k = 0, m;
	double	   *all;
	double		v;

	for (int i = 0; i < n; i++)
	{
		values(&cl[i], which, &m);
		total += m;
	}
	*count = total;
	if (total == 0)
		return 0;
	all = malloc(total * sizeof(double));
	for (int i = 0; i < n; i++)
	{
		double	   *a = values(&cl[i], which, &m);

		if (m)
			memcpy(all + k, a, m * sizeof(double));
		k += m;
	}
	qsort(all, total, sizeof(double), cmp);
	k = (size_t) (p * total + 0.999999);
	if (k < 1)
		k = 1;
	if (k > total)
		k = total;
	v = all[k - 1];
	free(all);
	return v;
}

int
main(int argc, char **argv)
{
	const char *conninfo = "", *errfile = NULL, *readyfile = NULL;
	int			nclients = 1, seconds = 0, opt;
	client_t   *cl;
	sigset_t	sigs;
	long		completed, shed, rejected, retried, errors;
	size_t		n;

	while ((opt = getopt(argc, argv, "d:c:q:T:m:e:r:")) != -1)
	{
		switch (opt)
		{
			case 'd': conninfo = optarg; break;
			case 'c': nclients = atoi(optarg); break;
			case 'q': query = optarg; break;
			case 'T': seconds = atoi(optarg); break;
			case 'm': max_sleep_ms = atoi(optarg); break;
			case 'e': errfile = optarg; break;
			case 'r': readyfile = optarg; break;
			default:
				fprintf(stderr, "usage: flood -d CONNINFO -c CLIENTS -q QUERY [-T SECONDS] [-m MAX_SLEEP_MS] [-e ERRFILE] [-r READYFILE]\n");
				return 2;
		}
	}
	if (query == NULL || nclients < 1)
	{
		fprintf(stderr, "flood: -q QUERY and -c CLIENTS >= 1 are required\n");
		return 2;
	}

	/* Worker threads inherit a mask without the stop signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	cl = calloc(nclients, sizeof(client_t));
	for (int i = 0; i < nclients; i++)
	{
		cl[i].conn = PQconnectdb(conninfo);
		if (PQstatus(cl[i].conn) != CONNECTION_OK)
		{
			fprintf(stderr, "flood: %s", PQerrorMessage(cl[i].conn));
			return 1;
		}
		cl[i].cancel = PQgetCancel(cl[i].conn);
	}
	if (readyfile)
	{
		FILE	   *f = fopen(readyfile, "w");

		if (f == NULL)
		{
			fprintf(stderr, "flood: %s: %s\n", readyfile, strerror(errno));
			return 1;
		}
		fputs("ready\n", f);
		fclose(f);
	}
	if (seconds > 0)
		alarm(seconds);
	for (int i = 0; i < nclients; i++)
		pthread_create(&cl[i].thread, NULL, run, &cl[i]);

	{
		int			sig;

		sigwait(&sigs, &sig);
	}
	atomic_store(&stop, 1);
	completed = atomic_load(&n_completed);
	shed = atomic_load(&n_shed);
	rejected = atomic_load(&n_rejected);
	retried = atomic_load(&n_retried);
	errors = atomic_load(&n_errors);
	for (int i = 0; i < nclients; i++)
	{
		char		buf[256];

		PQcancel(cl[i].cancel, buf, sizeof(buf));
	}
	for (int i = 0; i < nclients; i++)
	{
		pthread_join(cl[i].thread, NULL);
		PQfreeCancel(cl[i].cancel);
		PQfinish(cl[i].conn);
	}

	printf("completed %ld\nshed %ld\nrejected %ld\nretried %ld\nerrors %ld\n",
		   completed, shed, rejected, retried, errors);
	printf("reject_p50_ms %.3f\n", pct(cl, nclients, 0, 0.50, &n));
	printf("reject_p99_ms %.3f\n", pct(cl, nclients, 0, 0.99, &n));
	printf("reject_max_ms %.3f\n", pct(cl, nclients, 0, 1.0, &n));
	printf("reject_n %zu\n", n);
	printf("timeout_p99_ms %.3f\n", pct(cl, nclients, 2, 0.99, &n));
	printf("timeout_n %zu\n", n);
	printf("done_p50_ms %.3f\n", pct(cl, nclients, 1, 0.50, &n));
	printf("done_p99_ms %.3f\n", pct(cl, nclients, 1, 0.99, &n));
	if (errfile)
	{
		FILE	   *f = fopen(errfile, "w");

		if (f == NULL)
		{
			fprintf(stderr, "flood: %s: %s\n", errfile, strerror(errno));
			return 1;
		}
		if (err_text)
			fputs(err_text, f);
		fclose(f);
	}
	return 0;
}
