/*-------------------------------------------------------------------------
 *
 * audit.h
 *	  The audit trail: reads recorded by the shared writer pool (committed
 *	  outside the reader's transaction, src/audit_writer.c) and changes
 *	  recorded in the changing transaction (src/audit.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_AUDIT_H
#define LOYALTY_AUDIT_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* limits checked up front (22023) before a record is queued or staged */
#define AUDIT_ACTION_MAX	32		/* characters, ^[a-z][a-z_]{0,31}$ */
#define AUDIT_PURPOSE_MAX	200		/* characters */
#define AUDIT_FIELDS_MAX	1000	/* bytes of the text[] literal */
#define AUDIT_HASH_LEN		32		/* SHA-256 */

/* one read record as queued in shared memory (text fields NUL-terminated) */
typedef struct AuditRead
{
	TimestampTz at;
	bool		has_member;
	pg_uuid_t	member;
	bool		has_store;
	bool		has_department;
	bool		has_fields;
	bool		has_purpose;
	char		login[NAMEDATALEN];
	char		role[NAMEDATALEN];
	char		store_code[32];
	char		department[32];
	char		action[AUDIT_ACTION_MAX + 1];
	char		fields[AUDIT_FIELDS_MAX + 1];
	char		purpose[AUDIT_PURPOSE_MAX * 4 + 1];
} AuditRead;

/* settings: loyalty.audit_writers (src/audit_writer.c), loyalty.audit_mode (src/audit.c) */
extern int	loyalty_audit_writers;

typedef enum AuditMode
{
	AUDIT_MODE_POOL = 0,		/* the shared pool (if preloaded) */
	AUDIT_MODE_SESSION			/* a writer per session, synchronous */
} AuditMode;

extern int	loyalty_audit_mode;

/* src/audit_writer.c: the pool */
extern void loyalty_audit_init(void);
extern bool loyalty_audit_pool_available(void);
extern void loyalty_audit_enqueue_and_wait(const AuditRead *rec);
extern void loyalty_audit_changes_committed(void);
extern void loyalty_audit_writers_ensure(void);
/*
 * The chain's head kept in shared memory (src/audit_writer.c), handed to
 * loyalty_audit_chain by the writers: acquire waits until this process is
 * the one extending the chain and returns the head if it is known; release
 * leaves the new head after the commit.  NULL ops: no pool (not
 * preloaded), the table lock serialises the writers instead.
 */
typedef struct AuditChainOps
{
	bool		(*acquire) (Oid relid, int64 *last_id, uint8 *hash, int *hashlen);
	void		(*release) (Oid relid, int64 last_id, const uint8 *hash, int hashlen);
} AuditChainOps;

extern const AuditChainOps *loyalty_audit_chain_ops(void);

/* src/audit_chain.c: extending the chain (writers only) */
extern XLogRecPtr loyalty_audit_chain(const AuditRead *reads, int nreads, bool sweep,
									  bool flush, const AuditChainOps *ops);
extern void loyalty_audit_flush(XLogRecPtr lsn);
extern bool loyalty_audit_schema_12(void);
extern uint64 loyalty_audit_staged_taken;

/* src/audit_session.c: the session's own writer (not preloaded) */
extern void loyalty_audit_session_write(const AuditRead *rec);

/* src/audit.c: the backend's interface */
extern void loyalty_audit_record(const char *member_id, const char *action,
								 const char *fields, const char *purpose);
extern void loyalty_audit_change(const pg_uuid_t *member_id, const char *action,
								 const char *purpose, Jsonb *detail);
extern void loyalty_audit_change_cstr(const char *member_id, const char *action,
									  const char *purpose, Jsonb *detail);
extern Jsonb *loyalty_audit_detail(int npairs, const char *const *keys,
								   const char *const *values, const bool *quoted);
extern void loyalty_audit_xact_init(void);

#endif							/* LOYALTY_AUDIT_H */
