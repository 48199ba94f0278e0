/* K ranks of one NCCL communicator, each a process, calling the real libnccl with known
 * arguments:
 *
 *   nccl_ranks LIBNCCL K M STOPPED S    the parent: makes one ncclUniqueId, prints
 *                                       "ready", waits for a byte on stdin, then starts
 *                                       K rank processes sharing the id. Rank STOPPED
 *                                       (-1: none) stops after S collectives, the others
 *                                       do M. When all have done theirs it prints
 *                                       "ranks HEXID PID0 PID1 ...", and every rank waits
 *                                       for stdin to close before exiting.
 *   nccl_ranks LIBNCCL ids              prints two ids of two ncclGetUniqueId calls in hex.
 *   nccl_ranks LIBNCCL rank HEXID RANK K N   (internal) one rank.
 *
 * Without a GPU driver ncclCommInitRank fails and every collective fails at once, which
 * is what a uprobe test needs: the library's real code runs with the real arguments. The
 * ranks' `comm` is a sentinel set before init (init leaves it alone when it fails): the
 * address of a zeroed buffer, so that a collective reading the handle finds a bad magic
 * and returns an error instead of crashing.
 *
 * The last rank makes its communicator with ncclCommInitRankConfig, the others with
 * ncclCommInitRank. Collective i of a rank is, by i % 4: AllReduce(1024 float, sum), AllGather(256 int32
 * per rank), Broadcast(4096 uint8, root 0), Reduce(100 double, max, root 1). Before them
 * each rank does one group of a Send and a Recv (8 int64) to its neighbours. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef void *ncclComm_t;
typedef int (*get_id_fn)(ncclUniqueId *);
typedef int (*init_fn)(ncclComm_t *, int, ncclUniqueId, int);
typedef int (*init_config_fn)(ncclComm_t *, int, ncclUniqueId, int, void *);
typedef int (*all_reduce_fn)(const void *, void *, size_t, int, int, ncclComm_t, void *);
typedef int (*all_gather_fn)(const void *, void *, size_t, int, ncclComm_t, void *);
typedef int (*broadcast_fn)(const void *, void *, size_t, int, int, ncclComm_t, void *);
typedef int (*reduce_fn)(const void *, void *, size_t, int, int, int, ncclComm_t, void *);
typedef int (*p2p_fn)(const void *, size_t, int, int, ncclComm_t, void *);
typedef int (*group_fn)(void);
typedef int (*destroy_fn)(ncclComm_t);

#define SENTINEL_BYTES (4 << 20)
static char sentinel[SENTINEL_BYTES];
static void *lib;

static void *need(const char *symbol)
{
	void *f = dlsym(lib, symbol);
	if (!f) {
		fprintf(stderr, "%s is missing\n", symbol);
		exit(1);
	}
	return f;
}

static void hex(const ncclUniqueId *id, char *out)
{
	for (int i = 0; i < 128; i++)
		sprintf(out + 2 * i, "%02x", (unsigned char)id->internal[i]);
}

static void unhex(const char *in, ncclUniqueId *id)
{
	for (int i = 0; i < 128; i++) {
		unsigned v = 0;
		sscanf(in + 2 * i, "%2x", &v);
		id->internal[i] = (char)v;
	}
}

#define STREAM ((void *)0x5700)

__attribute__((noinline)) int collective(int i, ncclComm_t comm)
{
	static float f[1024];
	static int ints[256 * 8];
	static unsigned char bytes[4096];
	static double d[100];

	switch (i % 4) {
	case 0:
		return ((all_reduce_fn)need("ncclAllReduce"))(f, f, 1024, 7, 0, comm, STREAM);
	case 1:
		return ((all_gather_fn)need("ncclAllGather"))(ints, ints, 256, 2, comm, STREAM);
	case 2:
		return ((broadcast_fn)need("ncclBroadcast"))(bytes, bytes, 4096, 1, 0, comm, STREAM);
	default:
		return ((reduce_fn)need("ncclReduce"))(d, d, 100, 8, 2, 1, comm, STREAM);
	}
}

__attribute__((noinline)) void run_rank(const ncclUniqueId *id, int rank, int k, int n)
{
	static long long p2p[8];
	ncclComm_t comm = sentinel;
	/* The last rank uses the variant with a config (NULL: the defaults). */
	int ret = rank == k - 1
		? ((init_config_fn)need("ncclCommInitRankConfig"))(&comm, k, *id, rank, NULL)
		: ((init_fn)need("ncclCommInitRank"))(&comm, k, *id, rank);

	fprintf(stderr, "rank %d: init returned %d, comm %s\n", rank, ret,
		comm == (ncclComm_t)sentinel ? "untouched" : "set");
	comm = sentinel;
	((group_fn)need("ncclGroupStart"))();
	((p2p_fn)need("ncclSend"))(p2p, 8, 4, (rank + 1) % k, comm, STREAM);
	((p2p_fn)need("ncclRecv"))(p2p, 8, 4, (rank + k - 1) % k, comm, STREAM);
	((group_fn)need("ncclGroupEnd"))();
	for (int i = 0; i < n; i++)
		collective(i, comm);
}

__attribute__((noinline)) static int rank_main(char **argv)
{
	ncclUniqueId id;
	char byte = 'd';

	unhex(argv[3], &id);
	run_rank(&id, atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
	/* fd 3: the parent's "done" pipe. Then wait, off NCCL, until stdin closes. */
	if (write(3, &byte, 1) != 1)
		return 1;
	close(3);
	while (read(0, &byte, 1) > 0) {
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s LIBNCCL K M STOPPED S | LIBNCCL ids\n", argv[0]);
		return 2;
	}
	lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	if (!strcmp(argv[2], "rank") && argc == 7)
		return rank_main(argv);
	get_id_fn get_id = (get_id_fn)need("ncclGetUniqueId");
	ncclUniqueId id, other;
	char text[257], text2[257];

	if (get_id(&id) || get_id(&other)) {
		fprintf(stderr, "ncclGetUniqueId failed\n");
		return 1;
	}
	hex(&id, text);
	hex(&other, text2);
	if (!strcmp(argv[2], "ids")) {
		printf("%s\n%s\n", text, text2);
		return 0;
	}
	if (argc != 6)
		return 2;
	int k = atoi(argv[2]), m = atoi(argv[3]), stopped = atoi(argv[4]), s = atoi(argv[5]);
	int done[2];
	pid_t pids[64];
	char go;

	if (k < 1 || k > 64 || pipe2(done, O_CLOEXEC))
		return 2;
	printf("ready\n");
	fflush(stdout);
	if (read(0, &go, 1) != 1)
		return 1;
	for (int r = 0; r < k; r++) {
		char rank[16], nranks[16], n[16];
		snprintf(rank, sizeof(rank), "%d", r);
		snprintf(nranks, sizeof(nranks), "%d", k);
		snprintf(n, sizeof(n), "%d", r == stopped ? s : m);
		pids[r] = fork();
		if (pids[r] == 0) {
			dup2(done[1], 3);
			execl("/proc/self/exe", argv[0], argv[1], "rank", text, rank, nranks, n,
			      (char *)NULL);
			_exit(127);
		}
	}
	close(done[1]);
	for (int r = 0; r < k; r++) {
		char byte;
		if (read(done[0], &byte, 1) != 1) {
			fprintf(stderr, "a rank died\n");
			return 1;
		}
	}
	printf("ranks %s", text);
	for (int r = 0; r < k; r++)
		printf(" %d", pids[r]);
	printf("\n");
	fflush(stdout);
	int failed = 0;
	for (int r = 0; r < k; r++) {
		int status;
		waitpid(pids[r], &status, 0);
		failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	}
	return failed;
}
