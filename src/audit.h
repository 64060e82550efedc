/*-------------------------------------------------------------------------
 *
 * audit.h
 *	  Audit records committed outside the reader's transaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_AUDIT_H
#define LOYALTY_AUDIT_H

/* fields: a text[] literal such as {phone,full_name}, or NULL */
extern void loyalty_audit_record(const char *member_id, const char *action,
								 const char *fields, const char *purpose);

#endif							/* LOYALTY_AUDIT_H */
