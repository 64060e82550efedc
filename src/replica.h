/*-------------------------------------------------------------------------
 *
 * replica.h
 *	  Store replicas by logical replication: the publication, subscription
 *	  and slot helpers (replica_ddl.c), HQ's DBA functions (replica_hq.c),
 *	  the outbox applier (replica_apply.c) and store mode (replica_store.c).
 *
 * Names: a store's publication and its slot at HQ are both
 * loyalty_store_<code>; the store's subscription has the same name (so it
 * is the walsender's application_name at HQ).  Every store publishes its
 * outbox as loyalty_outbox from slot loyalty_outbox; HQ's subscription to
 * it is loyalty_outbox_<code>.  A regional hub's publication, slot and
 * subscription are loyalty_hub_<code>; it republishes to its stores under
 * their own names, and HQ subscribes to its outbox as to a store's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REPLICA_H
#define LOYALTY_REPLICA_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#define REPLICA_STORE_PREFIX	"loyalty_store_"
#define REPLICA_HUB_PREFIX		"loyalty_hub_"
#define REPLICA_OUTBOX_PREFIX	"loyalty_outbox_"
#define REPLICA_OUTBOX_PUB		"loyalty_outbox"
#define REPLICA_OUTBOX_SLOT		"loyalty_outbox"
#define REPLICA_LOGIN_GROUP		"loyalty_replication"
#define REPLICA_OUTPUT_PLUGIN	"loyalty"

/* replica_ddl.c */
extern char *replica_store_object_name(const char *code);
extern char *replica_hub_object_name(const char *code);
extern char *replica_outbox_sub_name(const char *code);
extern void replica_create_store_publication(const char *pubname,
											 const char *store_code);
extern void replica_drop_publication(const char *pubname);
extern bool replica_publication_exists(const char *pubname);
extern char *replica_published_select(int i, const char *store_code,
									  const char **relname);
extern void replica_grant_replication_group(const char *login, bool grant);
extern void replica_create_subscription(const char *subname,
										const char *conninfo,
										const char *pubname,
										const char *slotname,
										bool copy_data);
extern void replica_drop_subscription(const char *subname);
extern bool replica_subscription_exists(const char *subname);
extern void replica_set_subscription_enabled(const char *subname,
											 bool enabled);
extern bool replica_slot_exists(const char *slotname, bool *active);
extern char *replica_slot_elsewhere(const char *slotname);
extern void replica_create_slot(const char *slotname);
extern const char *replica_slot_plugin(void);
extern void replica_drop_slot(const char *slotname, bool force);
extern bool replica_ensure_remote_slot(const char *conninfo,
									   const char *appname);
extern void replica_ensure_outbox_publication(void);
typedef enum ReplicaIdentityState
{
	REPLICA_IDENTITY_NONE,		/* no identity recorded */
	REPLICA_IDENTITY_THIS,		/* this server and database */
	REPLICA_IDENTITY_OTHER		/* another: a restored copy */
} ReplicaIdentityState;

extern void replica_check_conninfo(const char *conninfo);
extern char *replica_local_system_id(void);
extern void replica_check_remote_not_self(const char *conninfo);
extern ReplicaIdentityState replica_identity_state(void);
extern void replica_identity_claim(bool adopt);

/* replica_offline.c: stays, check-outs and charges at a store replica */
struct StayResult;
extern bool replica_offline_here(void);
extern void replica_offline_stay(const char *key, const pg_uuid_t *member,
								 const char *store, DateADT ci, DateADT co,
								 int32 rooms, Datum room_revenue,
								 Datum other_revenue, bool checked_out,
								 TimestampTz occurred_at,
								 struct StayResult *res);
extern void replica_offline_charge(const char *key, const pg_uuid_t *member,
								   const char *store, Datum amount,
								   TimestampTz occurred_at,
								   struct StayResult *res);
extern void replica_offline_checkout(const char *key, TimestampTz occurred_at,
									 struct StayResult *res);

/* replica_apply.c */
extern const char *replica_node_role(char *store_code, int64 *incarnation);

/* replica_event.c */
struct _SPI_plan;
extern char *replica_json_text(Datum payload, const char *key);
extern uint64 replica_run_keyed(struct _SPI_plan *plan, const Datum *values,
								const char *nulls, int expected);

/* replica_apply.c: the replica applier's shared area and wake-up */
extern void loyalty_replica_apply_init(void);

/* replica_link.c: the settings of the scheduled link check */
extern void replica_link_init(void);

#endif							/* LOYALTY_REPLICA_H */
