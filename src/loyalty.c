/*-------------------------------------------------------------------------
 *
 * loyalty.c
 *	  Module entry point: registers each subsystem and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "audit.h"
#include "audit_read.h"
#include "benefit.h"
#include "benefit_catalog.h"
#include "benefit_member.h"
#include "risk_cache.h"
#include "roles_caller.h"
#include "policy.h"
#include "privacy.h"
#include "ledger.h"
#include "replica_verify.h"
#include "replica.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init
 *		Called when the library is loaded.
 */
void
_PG_init(void)
{
	loyalty_policy_cache_init();
	loyalty_identity_init();
	loyalty_benefit_cache_init();
	loyalty_benefit_member_init();
	loyalty_risk_cache_init();
	loyalty_privacy_settings_init();
	ledger_authority_init();
	replica_verify_init();
	replica_link_init();
	loyalty_privacy_guard_init();
	loyalty_privacy_key_init();
	loyalty_audit_init();
	loyalty_audit_xact_init();
	loyalty_audit_read_init();
	loyalty_replica_apply_init();
}
