/*-------------------------------------------------------------------------
 *
 * roles.h
 *	  Store codes and the department roles of a store.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ROLES_H
#define LOYALTY_ROLES_H

/* store codes become part of role names */
#define STORE_CODE_MAX 16

extern void loyalty_check_store_code(const char *code);
extern void loyalty_create_store_roles(const char *code);

#endif							/* LOYALTY_ROLES_H */
