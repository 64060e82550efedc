/*-------------------------------------------------------------------------
 *
 * cache.h
 *	  Per-backend caches of extension tables, invalidated through the
 *	  relcache when the tables change.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_INVALIDATE_H
#define LOYALTY_INVALIDATE_H

extern Oid	loyalty_relid(const char *relname);

#endif							/* LOYALTY_INVALIDATE_H */
