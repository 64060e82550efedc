/*-------------------------------------------------------------------------
 *
 * roles_caller.h
 *	  Who is calling: the store and department of the session's role,
 *	  taken from role membership only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_IDENTITY_H
#define LOYALTY_IDENTITY_H

#include "policy.h"

typedef enum LoyaltyDepartment
{
	DEPT_NONE = 0,
	/* store departments */
	DEPT_FRONTDESK,
	DEPT_HOUSEKEEPING,
	DEPT_FNB,
	DEPT_STORE_MANAGER,
	/* headquarters */
	DEPT_CRM,
	DEPT_MARKETING,
	DEPT_BI,
	DEPT_DBA,
	LOYALTY_NUM_DEPARTMENTS
} LoyaltyDepartment;

#define DEPT_BIT(d)		(1U << (d))
#define DEPTS_STORE		(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_HOUSEKEEPING) | \
						 DEPT_BIT(DEPT_FNB) | DEPT_BIT(DEPT_STORE_MANAGER))
#define DEPTS_HQ		(DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_MARKETING) | \
						 DEPT_BIT(DEPT_BI) | DEPT_BIT(DEPT_DBA))

typedef struct LoyaltyCaller
{
	Oid			userid;			/* the role we resolved (outer user) */
	Oid			staff_role;		/* the mapped department role */
	bool		is_hq;
	bool		is_superuser;
	LoyaltyDepartment department;
	char		store_code[LOYALTY_CODE_LEN];	/* "" at HQ */
} LoyaltyCaller;

extern const char *const loyalty_department_names[LOYALTY_NUM_DEPARTMENTS];

extern void loyalty_identity_init(void);
extern const LoyaltyCaller *loyalty_caller_lookup(void);
extern const LoyaltyCaller *loyalty_caller(void);
extern void loyalty_require_department(const LoyaltyCaller *caller,
									   uint32 allowed_mask);
extern void loyalty_require_store(const LoyaltyCaller *caller,
								  const char *store_code);
extern LoyaltyDepartment loyalty_department_from_name(const char *name);

#endif							/* LOYALTY_IDENTITY_H */
