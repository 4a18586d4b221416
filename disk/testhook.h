/*
 * disk/testhook.h — crash-injection points for the reliability tests (tests/it_chaos.sh).
 *
 * WS_TEST_HOOK("name") marks a moment in a window's life where a crash must be survivable
 * (engine/engine.c's invariants I1-I3). In a build configured with -DWS_TEST_HOOKS=ON, running with
 * WS_CRASH_AT=name:N makes the N-th pass through that point raise SIGKILL, so a test can kill
 * the engine exactly between two durable steps instead of hoping a random kill lands there.
 * Without WS_TEST_HOOKS (the default) the macro compiles to nothing: production binaries have
 * no hook, no getenv, no branch.
 *
 * Points: fetch_record (a record was hashed: mid-fetch), spool_write (a chunk of evidence was
 * staged: mid-spool), spool_rename (a spool file is fsynced under its temporary name),
 * spool_envelope (evidence durable, envelope not yet), spool_remove (envelope removed from the
 * spool, evidence not yet), sink_published (one sink holds the window, the next does not yet),
 * head_published (every sink and the chain head hold it, the offset is not committed),
 * deadlettered (the dead letter is acknowledged, the offset is not committed); where a window
 * changes hands in the pipeline: build_worker (a build worker took it, nothing read yet),
 * store_worker (a store worker took it, no object store written
 * by it yet), stored (every object store holds it, back on the engine thread, the topic not
 * yet), topic_submitted and head_submitted (the message is with the producer, its delivery
 * report not yet served: other windows of other queries are in flight around it).
 *
 * Home: the points are in disk/spool.c and engine/engine.c, so the hook lives in the lower of
 * the two modules and engine/ includes this header directly (window/ stays free of process
 * control). It is a build-time instrument rather than part of disk/disk.h's API.
 */
#ifndef WS_DISK_TESTHOOK_H
#define WS_DISK_TESTHOOK_H

#ifdef WS_TEST_HOOKS
void ws_test_hook(const char *point);
#define WS_TEST_HOOK(point) ws_test_hook(point)
#else
#define WS_TEST_HOOK(point) ((void)0)
#endif

#endif /* WS_DISK_TESTHOOK_H */
