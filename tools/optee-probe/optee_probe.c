// SPDX-License-Identifier: GPL-2.0
/*
 * optee_probe: records what the secure world's OP-TEE answers to the fast
 * calls of its SMC ABI that change no state the host driver depends on,
 * and to the device-enumeration pseudo TA, one kernel log line each.
 *
 * The lines are the fixture of tools/optee-mediator/tests/real_optee.rs,
 * which compares the mediator's userspace TEE with them. Load it once: it
 * does its work in init and stays loaded, doing nothing more.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/arm-smccc.h>
#include <linux/err.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/tee_drv.h>
#include <linux/types.h>
#include <linux/uuid.h>

/* OP-TEE's function ids (SMC32 fast calls), see optee_smc.h. */
#define PROBE_FAST(owner, nr) \
	ARM_SMCCC_CALL_VAL(ARM_SMCCC_FAST_CALL, ARM_SMCCC_SMC_32, (owner), (nr))
#define PROBE_OS(nr)	PROBE_FAST(ARM_SMCCC_OWNER_TRUSTED_OS, (nr))
#define PROBE_GEN(nr)	PROBE_FAST(ARM_SMCCC_OWNER_TRUSTED_OS_END, (nr))

#define PROBE_CALLS_COUNT		PROBE_GEN(0xff00)
#define PROBE_CALLS_UID			PROBE_GEN(0xff01)
#define PROBE_CALLS_REVISION		PROBE_GEN(0xff03)
#define PROBE_GET_OS_UUID		PROBE_OS(0)
#define PROBE_GET_OS_REVISION		PROBE_OS(1)
#define PROBE_GET_SHM_CONFIG		PROBE_OS(7)
#define PROBE_EXCHANGE_CAPABILITIES	PROBE_OS(9)
#define PROBE_GET_THREAD_COUNT		PROBE_OS(15)

/* OPTEE_SMC_NSEC_CAP_UNIPROCESSOR */
#define PROBE_NSEC_CAP_UNIPROCESSOR	BIT(0)

/* The device-enumeration pseudo TA and its command PTA_CMD_GET_DEVICES. */
static const uuid_t probe_pta_uuid =
	UUID_INIT(0x7011a688, 0xddde, 0x4053,
		  0xa5, 0xa9, 0x7b, 0x3c, 0x4d, 0xdf, 0x13, 0xb8);
#define PROBE_PTA_CMD_GET_DEVICES	0x0

/* GlobalPlatform TEE Client API result codes. */
#define PROBE_TEEC_SUCCESS		0x00000000
#define PROBE_TEEC_ERROR_SHORT_BUFFER	0xffff0010

static void probe_print(const char *name, const struct arm_smccc_res *res)
{
	pr_info("%s a0=0x%lx a1=0x%lx a2=0x%lx a3=0x%lx\n", name,
		res->a0, res->a1, res->a2, res->a3);
}

/* One fast call with every argument register but a0 (and a1) zero. */
static void probe_fast(const char *name, u32 fid)
{
	struct arm_smccc_res res;

	arm_smccc_smc(fid, 0, 0, 0, 0, 0, 0, 0, &res);
	probe_print(name, &res);
}

static void probe_exchange_capabilities(u32 nsec)
{
	struct arm_smccc_res res;

	arm_smccc_smc(PROBE_EXCHANGE_CAPABILITIES, nsec, 0, 0, 0, 0, 0, 0,
		      &res);
	pr_info("EXCHANGE_CAPABILITIES nsec=0x%x a0=0x%lx a1=0x%lx a2=0x%lx a3=0x%lx\n",
		nsec, res.a0, res.a1, res.a2, res.a3);
}

/* The normal world's OP-TEE client device (tee0, not the supplicant's). */
static int probe_match_optee(struct tee_ioctl_version_data *ver,
			     const void *data)
{
	return ver->impl_id == TEE_IMPL_ID_OPTEE &&
	       !(ver->gen_caps & TEE_GEN_CAP_PRIVILEGED);
}

/*
 * PTA_CMD_GET_DEVICES with an output memory reference @shm of @size bytes
 * (@shm NULL and @size 0 to learn the size). Returns the kernel's error,
 * the TEE's answer in @arg and the size it reported in @size.
 */
static int probe_get_devices(struct tee_context *ctx, u32 session,
			     struct tee_shm *shm, size_t *size,
			     struct tee_ioctl_invoke_arg *arg)
{
	struct tee_param param[4];
	int rc;

	memset(arg, 0, sizeof(*arg));
	memset(param, 0, sizeof(param));
	arg->func = PROBE_PTA_CMD_GET_DEVICES;
	arg->session = session;
	arg->num_params = ARRAY_SIZE(param);
	param[0].attr = TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_OUTPUT;
	param[0].u.memref.shm = shm;
	param[0].u.memref.size = *size;
	param[0].u.memref.shm_offs = 0;

	rc = tee_client_invoke_func(ctx, arg, param);
	if (!rc)
		*size = param[0].u.memref.size;
	return rc;
}

/* Lists the devices of an open session; returns 0 or an error logged. */
static int probe_devices(struct tee_context *ctx, u32 session)
{
	struct tee_ioctl_invoke_arg arg;
	struct tee_shm *shm = NULL;
	size_t size = 0, count = 0, i;
	const u8 *list;
	int rc;

	rc = probe_get_devices(ctx, session, NULL, &size, &arg);
	if (rc) {
		pr_err("failed: PTA_CMD_GET_DEVICES (size query): %d\n", rc);
		return rc;
	}
	if (arg.ret == PROBE_TEEC_ERROR_SHORT_BUFFER) {
		if (!size || size % UUID_SIZE) {
			pr_err("failed: PTA_CMD_GET_DEVICES: size %zu is no list of UUIDs\n",
			       size);
			return -EPROTO;
		}
		shm = tee_shm_alloc_kernel_buf(ctx, size);
		if (IS_ERR(shm)) {
			rc = PTR_ERR(shm);
			pr_err("failed: tee_shm_alloc_kernel_buf(%zu): %d\n",
			       size, rc);
			return rc;
		}
		rc = probe_get_devices(ctx, session, shm, &size, &arg);
		if (rc) {
			pr_err("failed: PTA_CMD_GET_DEVICES: %d\n", rc);
			goto out;
		}
	}
	if (arg.ret == PROBE_TEEC_SUCCESS && shm)
		count = size / UUID_SIZE;
	pr_info("PTA_CMD_GET_DEVICES ret=0x%x origin=0x%x count=%zu\n",
		arg.ret, arg.ret_origin, count);
	if (arg.ret != PROBE_TEEC_SUCCESS) {
		pr_err("failed: PTA_CMD_GET_DEVICES returned 0x%x origin 0x%x\n",
		       arg.ret, arg.ret_origin);
		rc = -EIO;
		goto out;
	}
	if (!count)
		goto out;
	list = tee_shm_get_va(shm, 0);
	if (IS_ERR(list)) {
		rc = PTR_ERR(list);
		pr_err("failed: tee_shm_get_va: %d\n", rc);
		goto out;
	}
	for (i = 0; i < count; i++)
		pr_info("device %pUb\n", list + i * UUID_SIZE);
out:
	if (shm)
		tee_shm_free(shm);
	return rc;
}

/* Opens a session to the device PTA and lists its devices. */
static int probe_device_pta(void)
{
	struct tee_ioctl_open_session_arg sess;
	struct tee_context *ctx;
	int rc;

	ctx = tee_client_open_context(NULL, probe_match_optee, NULL, NULL);
	if (IS_ERR(ctx)) {
		rc = PTR_ERR(ctx);
		pr_err("failed: tee_client_open_context: %d\n", rc);
		return rc;
	}

	memset(&sess, 0, sizeof(sess));
	export_uuid(sess.uuid, &probe_pta_uuid);
	sess.clnt_login = TEE_IOCTL_LOGIN_REE_KERNEL;
	sess.num_params = 0;
	rc = tee_client_open_session(ctx, &sess, NULL);
	if (rc) {
		pr_err("failed: tee_client_open_session: %d\n", rc);
		goto out_ctx;
	}
	if (sess.ret != PROBE_TEEC_SUCCESS) {
		pr_err("failed: tee_client_open_session returned 0x%x origin 0x%x\n",
		       sess.ret, sess.ret_origin);
		rc = -EIO;
		goto out_ctx;
	}

	rc = probe_devices(ctx, sess.session);
	tee_client_close_session(ctx, sess.session);
out_ctx:
	tee_client_close_context(ctx);
	return rc;
}

static int __init optee_probe_init(void)
{
	enum arm_smccc_conduit conduit = arm_smccc_1_1_get_conduit();

	if (conduit != SMCCC_CONDUIT_SMC) {
		pr_err("failed: the SMCCC conduit is %s, not smc: no OP-TEE to probe\n",
		       conduit == SMCCC_CONDUIT_HVC ? "hvc" : "none");
		return -ENODEV;
	}

	probe_fast("CALLS_COUNT", PROBE_CALLS_COUNT);
	probe_fast("CALLS_UID", PROBE_CALLS_UID);
	probe_fast("CALLS_REVISION", PROBE_CALLS_REVISION);
	probe_fast("GET_OS_UUID", PROBE_GET_OS_UUID);
	probe_fast("GET_OS_REVISION", PROBE_GET_OS_REVISION);
	probe_exchange_capabilities(0);
	probe_exchange_capabilities(PROBE_NSEC_CAP_UNIPROCESSOR);
	probe_fast("GET_THREAD_COUNT", PROBE_GET_THREAD_COUNT);
	probe_fast("GET_SHM_CONFIG", PROBE_GET_SHM_CONFIG);

	if (!probe_device_pta())
		pr_info("done\n");
	return 0;
}

static void __exit optee_probe_exit(void)
{
}

module_init(optee_probe_init);
module_exit(optee_probe_exit);

MODULE_DESCRIPTION("Records OP-TEE's fast-call answers and device list");
MODULE_LICENSE("GPL");
