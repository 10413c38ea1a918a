/* common/fiber: the wait queue (fiber_wait / fiber_wake) that a full
 * process's acceptor and Redis calls waiting for a connection use: first in,
 * first woken; a wait whose time runs out leaves the queue and says so; wake
 * every one; outside a fiber there is nobody to wake it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/fiber.h"

struct waiter {
	struct fiber_queue *q;
	int timeout_ms;
	char name;
	int got;		/* fiber_wait's answer */
};

static char order[16];
static int n_order;

static void wait_fn(void *arg)
{
	struct waiter *w = arg;

	w->got = fiber_wait(w->q, w->timeout_ms);
	order[n_order++] = w->name;
}

struct waker {
	struct fiber_queue *q;
	int delay_ms, times, every;
};

static void wake_fn(void *arg)
{
	struct waker *k = arg;

	for (int i = 0; i < k->times; i++) {
		fiber_sleep(k->delay_ms);
		fiber_wake(k->q, k->every);
	}
}

static int setup(void **state)
{
	(void)state;
	return fiber_init(16);
}

/* Three waiters and a waker on fibers, run to the end; the queue is empty
 * after. */
static void run(struct fiber_queue *q, struct waiter w[3], struct waker *k)
{
	memset(order, 0, sizeof(order));
	n_order = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(fiber_spawn(wait_fn, &w[i]), 0);
	assert_int_equal(fiber_spawn(wake_fn, k), 0);
	fiber_run();
	assert_null(q->head);
	assert_null(q->tail);
}

static void test_first_in_first_woken(void **state)
{
	struct fiber_queue q = { 0 };
	struct waiter w[3] = { { &q, -1, 'a', -1 }, { &q, -1, 'b', -1 }, { &q, -1, 'c', -1 } };
	struct waker k = { &q, 5, 3, 0 };

	(void)state;
	run(&q, w, &k);
	assert_string_equal(order, "abc");
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].got, 1);
}

static void test_a_timed_out_wait_leaves_the_queue(void **state)
{
	struct fiber_queue q = { 0 };
	/* b's time runs out long before the first wake: the two wakes go to a
	 * and c, and the queue is empty after */
	struct waiter w[3] = { { &q, -1, 'a', -1 }, { &q, 10, 'b', -1 }, { &q, -1, 'c', -1 } };
	struct waker k = { &q, 60, 2, 0 };

	(void)state;
	run(&q, w, &k);
	assert_string_equal(order, "bac");
	assert_int_equal(w[0].got, 1);
	assert_int_equal(w[1].got, 0);
	assert_int_equal(w[2].got, 1);
}

static void test_wake_every_one(void **state)
{
	struct fiber_queue q = { 0 };
	struct waiter w[3] = { { &q, -1, 'a', -1 }, { &q, 5000, 'b', -1 }, { &q, -1, 'c', -1 } };
	struct waker k = { &q, 5, 1, 1 };

	(void)state;
	run(&q, w, &k);
	assert_string_equal(order, "abc");
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].got, 1);
}

static void test_outside_a_fiber_nobody_wakes_it(void **state)
{
	struct fiber_queue q = { 0 };

	(void)state;
	assert_int_equal(fiber_on(), 0);
	assert_int_equal(fiber_wait(&q, -1), 0);
	assert_null(q.head);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_in_first_woken),
		cmocka_unit_test(test_a_timed_out_wait_leaves_the_queue),
		cmocka_unit_test(test_wake_every_one),
		cmocka_unit_test(test_outside_a_fiber_nobody_wakes_it),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
