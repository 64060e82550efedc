/*-------------------------------------------------------------------------
 *
 * replica_verify.c
 *	  HQ verifies what a store event claims before applying it: who
 *	  recorded it (recorded_by), when (recorded_at, and a stay's or
 *	  charge's occurred_at) and what stands behind an accrual (source and
 *	  reference).  A store's superuser can write any row into the store's
 *	  outbox, outside the store API; HQ applies only what that store's
 *	  roles could have done.  A failed check raises 42501, which the applier
 *	  (replica_apply.c) records as a 'conflict' verdict with that SQLSTATE
 *	  and message, and applies nothing (docs/replication.md, "What HQ
 *	  verifies").
 *
 * Actor.  Roles are per server, so HQ cannot know every store login.  A
 * recorded_by that names a role HQ knows must be a member of that store's
 * department roles, with a department that may record the event's kind;
 * a role of HQ's departments, of another store, or of no department is
 * refused.  A name HQ does not know (a login made at the store) and a
 * superuser's name (the store's own DBA, e.g. postgres) are taken as the
 * store's; time and source still bound what such an event can do.
 *
 * Time.  recorded_at (the store's clock) must not lie before the store's
 * incarnation (when the server became the store's replica), more than
 * loyalty.replica_event_max_age before the event reached HQ, or more than
 * loyalty.replica_clock_skew after it.  A stay's, check-out's or charge's
 * occurred_at obeys the same window.  "When it reached HQ" is the
 * verdict's received_at for a retried event, so replica_retry() judges an
 * old event by its arrival, not by today.
 *
 * Source.  An accrual has source stay or spend (all the store API records)
 * and a reference.  A reference that names a stay or charge HQ knows must
 * be one of this member at this store; one HQ cannot resolve (a PMS folio)
 * may credit at most loyalty.store_accrual_cap points.  Anything above is
 * a manual adjustment, which only HQ's loyalty.points_adjust() makes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "replica.h"
#include "replica_verify.h"
#include "spi.h"

/* settings (superuser only) */
static int	replica_event_max_age = 30 * 24 * 60;	/* minutes */
static int	replica_clock_skew = 300;	/* seconds */
static int	store_accrual_cap = 10000;	/* points */

/*
 * replica_verify_init
 *		Define the verification settings (from _PG_init).  PGC_SUSET: only a
 *		superuser (or a role granted SET on them) changes what HQ accepts.
 */
void
replica_verify_init(void)
{
	DefineCustomIntVariable("loyalty.replica_event_max_age",
							"How long before reaching HQ a store event may have been recorded.",
							"Older events (back-dated, or from an outage longer than this) become conflicts.",
							&replica_event_max_age, 30 * 24 * 60, 1, 3650 * 24 * 60,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.replica_clock_skew",
							"How far a store's clock may run ahead of HQ's.",
							"Events recorded later than this after they reached HQ become conflicts.",
							&replica_clock_skew, 300, 0, 24 * 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.store_accrual_cap",
							"Points one store accrual may credit when HQ cannot resolve its reference to a stay or charge.",
							"Above it the event becomes a conflict; larger credits are HQ adjustments (loyalty.points_adjust).",
							&store_accrual_cap, 10000, 0, 100000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * refuse
 *		The one error of a failed check: 42501, message and detail.
 */
static void
refuse(const char *event_id, const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("store event \"%s\" refused: %s", event_id, message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("HQ applies only what the store's roles may do: see docs/replication.md, \"What HQ verifies\".")));
}

/*
 * kind_departments
 *		The store departments whose logins may record an event of kind
 *		(the department lists of the store API functions).
 */
static const char *const *
kind_departments(const char *kind)
{
	static const char *const all[] = {"frontdesk", "housekeeping", "fnb", "store_manager", NULL};
	static const char *const ledger[] = {"frontdesk", "fnb", "store_manager", NULL};
	static const char *const desk[] = {"frontdesk", "store_manager", NULL};

	if (strcmp(kind, "preference") == 0 || strcmp(kind, "risk_tag") == 0)
		return all;
	if (strcmp(kind, "accrual") == 0 || strcmp(kind, "redemption") == 0 ||
		strcmp(kind, "benefit_use") == 0)
		return ledger;
	return desk;				/* stay, checkout, charge, enrol */
}

/*
 * verify_actor
 *		recorded_by, if HQ knows the role, must be staff of this store in a
 *		department that may record kind (superusers: the store's DBA).
 */
static void
verify_actor(const char *event_id, const char *store_code, const char *kind,
			 Datum recorded_by)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	const char *actor = NameStr(*DatumGetName(recorded_by));
	const char *const *allowed = kind_departments(kind);
	uint64		n;
	uint64		i;
	bool		ok = false;

	values[0] = recorded_by;
	/* saved, as every statement here: the applier checks every event */
	n = lspi_run(lspi_plan(&plan,
						   "SELECT r.rolsuper, s.store_code, s.department "
						   "  FROM pg_catalog.pg_roles r "
						   "  LEFT JOIN loyalty.staff_role s "
						   "    ON NOT r.rolsuper AND pg_catalog.pg_has_role(r.oid, s.role::oid, 'MEMBER') "
						   " WHERE r.rolname = $1",
						   1, types),
				 values, NULL, true, 0, SPI_OK_SELECT);
	if (n == 0)
		return;					/* a login made at the store */
	if (strcmp(lspi_text(0, 1), "t") == 0)
		return;					/* a superuser: the store's DBA */
	for (i = 0; i < n; i++)
	{
		char	   *store = lspi_text(i, 2);
		char	   *dept = lspi_text(i, 3);
		int			k;

		if (dept == NULL)
			refuse(event_id, psprintf("recorded_by \"%s\" is no loyalty staff", actor), NULL);
		if (store == NULL)
			refuse(event_id, psprintf("recorded_by \"%s\" is an HQ login", actor),
				   "A store event is recorded by a login of that store; HQ staff act at HQ.");
		if (strcmp(store, store_code) != 0)
			refuse(event_id, psprintf("recorded_by \"%s\" is staff of store \"%s\"", actor, store), NULL);
		for (k = 0; allowed[k]; k++)
			if (strcmp(allowed[k], dept) == 0)
				ok = true;
	}
	if (!ok)
		refuse(event_id, psprintf("recorded_by \"%s\" may not record a %s event", actor, kind),
			   "That login's department may not do this at the store.");
}

/*
 * verify_time
 *		at within [arrived - max_age, arrived + skew], and not before the
 *		store's incarnation (when it is recorded_at).
 */
static void
verify_time(const char *event_id, const char *what, TimestampTz at,
			TimestampTz arrived, int64 incarnation)
{
	TimestampTz earliest = arrived - (int64) replica_event_max_age * USECS_PER_MINUTE;
	TimestampTz latest = arrived + (int64) replica_clock_skew * USECS_PER_SEC;

	if (TIMESTAMP_NOT_FINITE(at) || at > latest)
		refuse(event_id, psprintf("%s %s is in the future", what, timestamptz_to_str(at)),
			   psprintf("It is later than the event's arrival at HQ plus loyalty.replica_clock_skew (%d s).",
						replica_clock_skew));
	if (at < earliest)
		refuse(event_id, psprintf("%s %s is older than loyalty.replica_event_max_age", what,
								  timestamptz_to_str(at)),
			   psprintf("Events may be recorded at most %d minutes before they reach HQ.",
						replica_event_max_age));
	if (incarnation > 0 &&
		at < time_t_to_timestamptz((pg_time_t) incarnation) - (int64) replica_clock_skew * USECS_PER_SEC)
		refuse(event_id, psprintf("%s %s is before the store became a replica", what,
								  timestamptz_to_str(at)),
			   psprintf("The event's incarnation " INT64_FORMAT " began at %s.", incarnation,
						timestamptz_to_str(time_t_to_timestamptz((pg_time_t) incarnation))));
}

/*
 * uuid_text
 *		Whether s is a uuid as uuid_out writes it (lowercase, hyphenated):
 *		exactly the texts that equal some id's ::text.
 */
static bool
uuid_text(const char *s)
{
	int			i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/*
 * verify_accrual
 *		Source stay or spend, a reference, and what stands behind it.
 */
static void
verify_accrual(const char *event_id, const char *store_code, Datum member_id,
			   Datum payload)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, UUIDOID, UUIDOID};
	Datum		values[4];
	char		nulls[4] = "    ";
	char	   *source = replica_json_text(payload, "source");
	char	   *reference = replica_json_text(payload, "reference");
	char	   *points = replica_json_text(payload, "points");
	char	   *backing;

	if (source == NULL || (strcmp(source, "stay") != 0 && strcmp(source, "spend") != 0))
		refuse(event_id, psprintf("accrual source \"%s\" is not a store's", source ? source : ""),
			   "A store records stay or spend accruals; adjustments, campaigns and bonuses are HQ's.");
	if (reference == NULL || reference[0] == '\0')
		refuse(event_id, "an accrual without a reference",
			   "A store credits points for a stay or a charge, named by its reference.");

	/*
	 * own: a stay or charge of this member at this store, at HQ or in its
	 * outbox; other: one of another member or store.  A stay or charge is
	 * named by its key or its id as text ($4: the reference as a uuid when
	 * it is one's text, so that both are index lookups and not a scan of
	 * every stay and charge per event).  Keyed: the outbox grows with the
	 * backlog being applied.
	 */
	values[0] = CStringGetTextDatum(reference);
	values[1] = CStringGetTextDatum(store_code);
	values[2] = member_id;
	if (uuid_text(reference))
		values[3] = DirectFunctionCall1(uuid_in, CStringGetDatum(reference));
	else
		nulls[3] = 'n';
	replica_run_keyed(lspi_plan(&plan,
								"SELECT CASE "
								" WHEN EXISTS (SELECT 1 FROM loyalty.stay s WHERE (s.idempotency_key = $1 OR s.stay_id = $4) "
								"                 AND s.member_id = $3 AND s.store_code = $2 AND s.status <> 'cancelled') "
								"   OR EXISTS (SELECT 1 FROM loyalty.charge c WHERE (c.idempotency_key = $1 OR c.charge_id = $4) "
								"                 AND c.member_id = $3 AND c.store_code = $2) "
								"   OR EXISTS (SELECT 1 FROM loyalty.outbox o WHERE o.store_code = $2 AND o.member_id = $3 "
								"                 AND o.kind IN ('stay', 'charge') AND o.payload ->> 'key' = $1) "
								" THEN 'own' "
								" WHEN EXISTS (SELECT 1 FROM loyalty.stay s WHERE s.idempotency_key = $1 OR s.stay_id = $4) "
								"   OR EXISTS (SELECT 1 FROM loyalty.charge c WHERE c.idempotency_key = $1 OR c.charge_id = $4) "
								" THEN 'other' ELSE 'unknown' END",
								4, types),
					  values, nulls, SPI_OK_SELECT);
	backing = lspi_text(0, 1);
	if (strcmp(backing, "other") == 0)
		refuse(event_id, psprintf("reference \"%s\" is a stay or charge of another member or store", reference),
			   NULL);
	if (strcmp(backing, "unknown") == 0 && points != NULL &&
		strtoll(points, NULL, 10) > store_accrual_cap)
		refuse(event_id, psprintf("%s points for reference \"%s\", which names no stay or charge HQ knows",
								  points, reference),
			   psprintf("Without a known stay or charge a store accrual may credit at most %d points (loyalty.store_accrual_cap); larger credits are HQ adjustments (loyalty.points_adjust).",
						store_accrual_cap));
}

/*
 * replica_verify_event
 *		Check a store event's actor, time and source; raise 42501 if any
 *		claim is beyond what the store's roles may do.  Called by the
 *		applier inside the event's subtransaction (and so on retry), with
 *		an SPI connection.
 */
void
replica_verify_event(const char *event_id, const char *store_code, const char *kind,
					 int64 incarnation, Datum member_id, Datum payload,
					 Datum recorded_at, Datum recorded_by)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3];
	bool		isnull;
	TimestampTz arrived;
	Datum		d;

	verify_actor(event_id, store_code, kind, recorded_by);

	values[0] = CStringGetTextDatum(store_code);
	values[1] = CStringGetTextDatum(event_id);
	values[2] = payload;
	/* keyed: outbox_result grows by a verdict per event */
	replica_run_keyed(lspi_plan(&plan,
								"SELECT coalesce((SELECT r.received_at FROM loyalty.outbox_result r "
								"                  WHERE r.store_code = $1 AND r.event_id = $2), pg_catalog.now()), "
								"       ($3 ->> 'occurred_at')::timestamptz",
								3, types),
					  values, NULL, SPI_OK_SELECT);
	arrived = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	verify_time(event_id, "recorded_at", DatumGetTimestampTz(recorded_at), arrived, incarnation);
	if (!isnull && (strcmp(kind, "stay") == 0 || strcmp(kind, "checkout") == 0 ||
					strcmp(kind, "charge") == 0))
		verify_time(event_id, "occurred_at", DatumGetTimestampTz(d), arrived, 0);

	if (strcmp(kind, "accrual") == 0)
		verify_accrual(event_id, store_code, member_id, payload);
}
