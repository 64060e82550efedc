/*-------------------------------------------------------------------------
 *
 * audit_read.h
 *	  Statement-level audit of reads of the member and BI views by store,
 *	  marketing and BI logins (src/audit_read.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_AUDIT_READ_H
#define LOYALTY_AUDIT_READ_H

extern void loyalty_audit_read_init(void);

#endif							/* LOYALTY_AUDIT_READ_H */
