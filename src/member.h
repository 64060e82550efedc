/*-------------------------------------------------------------------------
 *
 * member.h
 *	  The member's life in CRM (docs/crm.md): profile maintenance, status,
 *	  home store, service cases, duplicates and merges.  Shared helpers:
 *	  the idempotency record of CRM calls and the few SPI calls they need.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MEMBER_H
#define LOYALTY_MEMBER_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/uuid.h"

/* member_request.c */
extern char *crm_key_arg(FunctionCallInfo fcinfo, int argno);
extern char *crm_idem_replay(const char *key, const char *operation,
							 const char *args);
extern void crm_idem_record(const char *key, const char *operation,
							const char *args, const char *result);
extern uint64 crm_exec(const char *sql, int nargs, const Oid *types,
					   const Datum *values, const char *nulls, bool read_only);
extern char *crm_get_text(int row, int col);
extern char *crm_uuid_text(const pg_uuid_t *id);
extern void crm_member_not_found(void);
extern void crm_audit_change(const pg_uuid_t *member_id, const char *action,
							 const char *purpose, const char *detail_json);
extern const char *crm_purpose(void);

/* member_life.c */
extern char *member_status_of(const pg_uuid_t *member_id, bool lock);

#endif							/* LOYALTY_MEMBER_H */
