/*-------------------------------------------------------------------------
 *
 * replica_event.c
 *	  Reading store events at HQ, for the receive trigger, the replica
 *	  applier (src/replica_apply.c) and the verifier (src/replica_verify.c):
 *	  a payload field without a statement, and saved key lookups in the
 *	  tables a backlog makes grow.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "replica.h"
#include "spi.h"

/*
 * replica_run_keyed
 *		Execute a saved plan that finds rows by key in a table a backlog
 *		makes grow (loyalty.outbox, outbox_result, outbox_queue), planned
 *		with sequential scans off.  A saved plan is replanned only when its
 *		tables are analyzed: one made while the table was empty (a new HQ,
 *		the first events of a catch-up) scanned the whole table for every
 *		later event.  JIT is off too: a scan that must stay sequential (a
 *		stay looked up by its id as text) costs more than jit_above_cost
 *		with sequential scans off, and would be compiled at every event.
 *		Returns SPI_processed.
 */
uint64
replica_run_keyed(SPIPlanPtr plan, const Datum *values, const char *nulls,
				  int expected)
{
	int			save_nestlevel = NewGUCNestLevel();
	uint64		n;

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	n = lspi_run(plan, values, nulls, false, 0, expected);
	AtEOXact_GUC(true, save_nestlevel);
	return n;
}

/*
 * replica_json_text
 *		payload->>key as a C string, or NULL.
 */
char *
replica_json_text(Datum payload, const char *key)
{
	Jsonb	   *jb = DatumGetJsonbP(payload);
	JsonbValue	vbuf;
	JsonbValue *v;

	/* what ->> answers, without a statement per field */
	if (!JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), &vbuf);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}
