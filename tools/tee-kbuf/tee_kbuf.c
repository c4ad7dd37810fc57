// SPDX-License-Identifier: GPL-2.0
/*
 * tee_kbuf: a kernel client of registered memory, for the bench. Loading it
 * runs one check and its init's result is the verdict: a kernel buffer
 * registered with tee_shm_register_kernel_buf() (not page aligned, its
 * reference across a page boundary) goes to OP-TEE's invoke tests pseudo TA
 * as an in/out memory reference; the PTA sums the bytes it reads and writes
 * the sum into the first one. In a confidential guest the TEE core bounces
 * the buffer through shared memory (patches/guest-7.3), so the sum shows that
 * the input reached the TEE, and the first byte that the output came back.
 *
 * 0: the check passed. -ENODEV: nothing to check (no OP-TEE, or an OP-TEE
 * without the PTA, CFG_TEE_CORE_EMBED_INTERNAL_TESTS). Any other error: the
 * check failed; the kernel log says at which step.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/tee_drv.h>
#include <linux/uuid.h>

/* OP-TEE's PTA_INVOKE_TESTS_UUID and PTA_INVOKE_TESTS_CMD_PARAMS */
static const uuid_t pta_invoke_tests =
	UUID_INIT(0xd96a5b40, 0xc3e5, 0x21e3,
		  0x87, 0x94, 0x10, 0x02, 0xa5, 0xd5, 0xc6, 0x1b);
#define PTA_INVOKE_TESTS_CMD_PARAMS	1
#define TEEC_ERROR_ITEM_NOT_FOUND	0xffff0008

/* The buffer registered starts 1 byte into an allocation of BUF_LEN */
#define BUF_LEN		(2 * PAGE_SIZE + 300)
/* The reference, from the registered buffer's start */
#define REF_OFFS	(PAGE_SIZE - 100)
#define REF_LEN		(PAGE_SIZE + 200)

static u8 pattern(size_t i)
{
	return (u8)(i * 7 + 3) ^ (u8)(i >> 8);
}

static int match_optee(struct tee_ioctl_version_data *ver, const void *data)
{
	return ver->impl_id == TEE_IMPL_ID_OPTEE;
}

static int check(struct tee_context *ctx, u32 session)
{
	struct tee_ioctl_invoke_arg arg = { };
	struct tee_param param[4] = { };
	struct tee_shm *shm;
	u8 *buf, *reg, sum = 0;
	size_t i;
	int rc;

	buf = kmalloc(BUF_LEN, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < BUF_LEN; i++)
		buf[i] = pattern(i);
	reg = buf + 1;
	for (i = REF_OFFS; i < REF_OFFS + REF_LEN; i++)
		sum += reg[i];

	shm = tee_shm_register_kernel_buf(ctx, reg, BUF_LEN - 1);
	if (IS_ERR(shm)) {
		rc = PTR_ERR(shm);
		pr_err("tee_shm_register_kernel_buf() of %lu bytes: %d\n",
		       BUF_LEN - 1, rc);
		goto out;
	}

	arg.func = PTA_INVOKE_TESTS_CMD_PARAMS;
	arg.session = session;
	arg.num_params = 4;
	param[0].attr = TEE_IOCTL_PARAM_ATTR_TYPE_MEMREF_INOUT;
	param[0].u.memref.shm = shm;
	param[0].u.memref.shm_offs = REF_OFFS;
	param[0].u.memref.size = REF_LEN;
	rc = tee_client_invoke_func(ctx, &arg, param);
	tee_shm_free(shm);
	if (rc || arg.ret) {
		pr_err("PARAMS with an in/out reference of %lu bytes: rc %d, ret %#x, origin %u\n",
		       REF_LEN, rc, arg.ret, arg.ret_origin);
		rc = rc ?: -EIO;
		goto out;
	}

	rc = 0;
	if (reg[REF_OFFS] != sum) {
		pr_err("the first byte of the reference is %#x, not the sum %#x of its bytes: the TEE's answer did not reach the buffer, or the buffer did not reach the TEE\n",
		       reg[REF_OFFS], sum);
		rc = -EBADMSG;
	}
	for (i = 0; i < BUF_LEN; i++) {
		if (i != 1 + REF_OFFS && buf[i] != pattern(i)) {
			pr_err("byte %zu of the buffer changed\n", i);
			rc = -EBADMSG;
			break;
		}
	}
	if (!rc)
		pr_info("ok: the PTA summed %lu bytes of a registered kernel buffer into its first byte (%#x)\n",
			REF_LEN, sum);
out:
	kfree(buf);
	return rc;
}

static int __init tee_kbuf_init(void)
{
	struct tee_ioctl_open_session_arg sess = { };
	struct tee_ioctl_version_data ver;
	struct tee_context *ctx;
	bool no_reg_mem;
	int rc;

	ctx = tee_client_open_context(NULL, match_optee, NULL, &ver);
	if (IS_ERR(ctx)) {
		pr_info("no OP-TEE: %ld\n", PTR_ERR(ctx));
		return -ENODEV;
	}
	/* Trusted keys' TEE backend refuses a TEE without it */
	no_reg_mem = !(ver.gen_caps & TEE_GEN_CAP_REG_MEM);
	if (no_reg_mem)
		pr_err("kernel clients are told there is no registered memory (gen_caps %#x)\n",
		       ver.gen_caps);

	export_uuid(sess.uuid, &pta_invoke_tests);
	sess.clnt_login = TEE_IOCTL_LOGIN_REE_KERNEL;
	rc = tee_client_open_session(ctx, &sess, NULL);
	if (!rc && sess.ret == TEEC_ERROR_ITEM_NOT_FOUND) {
		pr_info("OP-TEE has no invoke tests PTA %pUb\n",
			&pta_invoke_tests);
		rc = -ENODEV;
		goto out_ctx;
	}
	if (rc || sess.ret) {
		pr_err("opening the invoke tests PTA: rc %d, ret %#x, origin %u\n",
		       rc, sess.ret, sess.ret_origin);
		rc = rc ?: -EIO;
		goto out_ctx;
	}

	rc = check(ctx, sess.session);
	if (!rc && no_reg_mem)
		rc = -EOPNOTSUPP;
	tee_client_close_session(ctx, sess.session);
out_ctx:
	tee_client_close_context(ctx);
	return rc;
}
module_init(tee_kbuf_init);

MODULE_DESCRIPTION("A kernel client of registered TEE memory, for the bench");
MODULE_LICENSE("GPL");
