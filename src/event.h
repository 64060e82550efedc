/*-------------------------------------------------------------------------
 *
 * event.h
 *	  The extension's event outbox: loyalty.event_outbox plus a NOTIFY on
 *	  channel "loyalty_event" (docs/ledger.md, "Events").
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_OUTBOX_H
#define LOYALTY_OUTBOX_H

#include "postgres.h"

#include "utils/uuid.h"

#define LOYALTY_EVENT_CHANNEL "loyalty_event"

extern int64 loyalty_outbox_emit(const char *kind, const pg_uuid_t *member_id,
								 const char *store_code, const char *payload_json);

#endif							/* LOYALTY_OUTBOX_H */
