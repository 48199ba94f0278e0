/* A stand-in for a process stuck in the GPU driver, with a pty as the "device".
 *
 * usage: ioctl_block BLOCK_MS QUICK_CALLS D_MS
 *
 * Opens a pty pair and prints "ready"; on a byte from stdin it makes QUICK_CALLS quick
 * ioctls (FIONREAD) on the slave, then one that blocks in the kernel for BLOCK_MS:
 * TCGETS whose result buffer is a page registered with userfaultfd, so the ioctl's
 * copy_to_user faults and waits until this program fills the page. (tcdrain() does not
 * block on a pty on this kernel: ptys have no chars_in_buffer, so TCSBRK returns at
 * once.) Then, when D_MS > 0, it vforks a child that sleeps D_MS: the parent waits for it
 * in uninterruptible sleep (state D). It prints "done ..." with what the test checks and
 * exits when stdin closes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int slave;
static void *page;
static volatile long blocked_tid;
static int blocked_ret;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	/* The raw syscall: safe in a vfork child, which shares this process's memory. */
	syscall(SYS_nanosleep, &ts, NULL);
}

static void *blocker(void *arg)
{
	(void)arg;
	blocked_tid = syscall(SYS_gettid);
	blocked_ret = ioctl(slave, TCGETS, page);
	return NULL;
}

int main(int argc, char **argv)
{
	long block_ms, d_ms;
	int quick, master, uffd, n = 0;
	long page_size = sysconf(_SC_PAGESIZE);
	char go, *path;
	pthread_t thread;

	if (argc != 4)
		return 2;
	block_ms = atol(argv[1]);
	quick = atoi(argv[2]);
	d_ms = atol(argv[3]);

	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		die("posix_openpt");
	path = ptsname(master);
	if (!path)
		die("ptsname");
	slave = open(path, O_RDWR | O_NOCTTY);
	if (slave < 0)
		die("open slave");

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		die("userfaultfd");
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	page = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		die("mmap");
	struct uffdio_register reg = {
		.range = { (unsigned long)page, page_size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");

	printf("ready\n");
	fflush(stdout);
	if (read(0, &go, 1) != 1)
		return 1;

	for (int i = 0; i < quick; i++)
		if (ioctl(slave, FIONREAD, &n))
			die("FIONREAD");

	if (pthread_create(&thread, NULL, blocker, NULL))
		die("pthread_create");
	/* The fault's message says the thread is inside the ioctl: from here on it is
	 * blocked for at least block_ms. */
	struct uffd_msg msg;
	if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
		die("read userfaultfd");
	sleep_ms(block_ms);
	struct uffdio_zeropage zero = { .range = { (unsigned long)page, page_size } };
	if (ioctl(uffd, UFFDIO_ZEROPAGE, &zero))
		die("UFFDIO_ZEROPAGE");
	pthread_join(thread, NULL);

	if (d_ms > 0) {
		pid_t child = vfork();

		if (child == 0) {
			sleep_ms(d_ms);
			_exit(0);
		}
		if (child < 0)
			die("vfork");
	}

	printf("done tid=%ld fd=%d path=%s ret=%d\n", blocked_tid, slave, path, blocked_ret);
	fflush(stdout);
	while (read(0, &go, 1) > 0)
		;
	return 0;
}
