/* Probes and lifecycle hooks in pod manifests: the kubelet's defaults, port names resolved, and the API server's
 * refusals with the field's path. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "pea/pod_manifest.h"
#include "pea/pod_workload.h"
#include "pea/util.h"
#include "manifest_expect.h"

#define POD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  terminationGracePeriodSeconds: 10\n"
#define CONTAINER "  containers:\n  - name: c\n    image: /img\n    args: [sh]\n    ports: [{name: web, containerPort: 8080}]\n"

static struct pea_pod_manifest *parse(const char *text, struct pea_error *err)
{
    return manifest_parse(text, strlen(text), err);
}

Test(manifest_probe, defaults_and_named_ports)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(
        POD CONTAINER
        "    livenessProbe: {httpGet: {port: web, httpHeaders: [{name: X-Probe, value: 'yes'}]}}\n"
        "    readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 2, successThreshold: 3}\n"
        "    startupProbe: {exec: {command: [cat, /ready]}, failureThreshold: 30, terminationGracePeriodSeconds: 4}\n"
        "    lifecycle:\n"
        "      postStart: {exec: {command: [touch, /started]}}\n"
        "      preStop: {sleep: {seconds: 5}}\n"
        "      stopSignal: SIGUSR1\n",
        &err);
    cr_assert_not_null(m, "%s", err.msg);
    const struct pea_pod_container *c = &m->containers[0];
    const struct pea_pod_probe *live = &c->liveness_probe;
    cr_expect_eq(live->handler.type, PEA_HANDLER_HTTP_GET);
    cr_expect_eq(live->handler.port, 8080);
    cr_expect_str_eq(live->handler.path, "/");
    cr_expect_null(live->handler.host);
    cr_expect(!live->handler.is_https);
    cr_expect_eq(live->handler.n_headers, 1);
    cr_expect_str_eq(live->handler.headers[0].name, "X-Probe");
    cr_expect_eq(live->period_seconds, 10);
    cr_expect_eq(live->timeout_seconds, 1);
    cr_expect_eq(live->success_threshold, 1);
    cr_expect_eq(live->failure_threshold, 3);
    cr_expect_eq(live->initial_delay_seconds, 0);
    cr_expect_eq(live->termination_grace_seconds, -1);
    cr_expect_eq(c->readiness_probe.handler.type, PEA_HANDLER_TCP_SOCKET);
    cr_expect_eq(c->readiness_probe.handler.port, 9000);
    cr_expect_eq(c->readiness_probe.period_seconds, 2);
    cr_expect_eq(c->readiness_probe.success_threshold, 3);
    cr_expect_eq(c->startup_probe.handler.type, PEA_HANDLER_EXEC);
    cr_expect_str_eq(c->startup_probe.handler.command[1], "/ready");
    cr_expect_eq(c->startup_probe.failure_threshold, 30);
    cr_expect_eq(c->startup_probe.termination_grace_seconds, 4);
    cr_expect_eq(c->post_start.type, PEA_HANDLER_EXEC);
    cr_expect_eq(c->pre_stop.type, PEA_HANDLER_SLEEP);
    cr_expect_eq(c->pre_stop.sleep_seconds, 5);
    cr_expect_eq(c->stop_signal, SIGUSR1);
}

Test(manifest_probe, no_probes_no_hooks_sigterm)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(POD CONTAINER, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_eq(m->containers[0].liveness_probe.handler.type, PEA_HANDLER_NONE);
    cr_expect_eq(m->containers[0].pre_stop.type, PEA_HANDLER_NONE);
    cr_expect_eq(m->containers[0].stop_signal, SIGTERM);
}

Test(manifest_probe, grpc_and_sidecar_probes)
{
    struct pea_error err = {0};
    AUTO_MANIFEST struct pea_pod_manifest *m = parse(
        POD "  initContainers:\n  - name: side\n    image: /img\n    args: [sh]\n    restartPolicy: Always\n"
            "    startupProbe: {grpc: {port: 9090, service: health}}\n" CONTAINER,
        &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_expect_eq(m->init_containers[0].startup_probe.handler.type, PEA_HANDLER_GRPC);
    cr_expect_str_eq(m->init_containers[0].startup_probe.handler.grpc_service, "health");
}

struct error_case {
    const char *text;
    const char *message;
};

static const struct error_case error_cases[] = {
    {POD CONTAINER "    livenessProbe: {exec: {command: [x]}, successThreshold: 2}\n",
     "spec.containers[0].livenessProbe.successThreshold: must be 1 for liveness and startup probes"},
    {POD CONTAINER "    readinessProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 3}\n",
     "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: must not be set for readiness probes"},
    {POD CONTAINER "    livenessProbe: {periodSeconds: 3}\n",
     "spec.containers[0].livenessProbe: must set one handler (exec, httpGet, tcpSocket, grpc)"},
    {POD CONTAINER "    livenessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}\n",
     "spec.containers[0].livenessProbe: may not set more than one handler (exec and tcpSocket)"},
    {POD CONTAINER "    livenessProbe: {httpGet: {port: admin}}\n",
     "spec.containers[0].livenessProbe.httpGet.port: no port named \"admin\" in the container's ports"},
    {POD CONTAINER "    livenessProbe: {tcpSocket: {port: 70000}}\n",
     "spec.containers[0].livenessProbe.tcpSocket.port: must be between 1 and 65535"},
    {POD CONTAINER "    livenessProbe: {grpc: {port: web}}\n",
     "spec.containers[0].livenessProbe.grpc.port: must be a number"},
    {POD CONTAINER "    livenessProbe: {httpGet: {port: 80, scheme: FTP}}\n",
     "spec.containers[0].livenessProbe.httpGet.scheme: must be one of \"HTTP\", \"HTTPS\", not \"FTP\""},
    {POD CONTAINER "    livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: 'a b', value: x}]}}\n",
     "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name: must be an HTTP header name, not \"a b\""},
    {POD CONTAINER "    livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: A, value: \"x\\r\\nB: y\"}]}}\n",
     "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value: must not contain line breaks"},
    {POD CONTAINER "    livenessProbe: {httpGet: {port: 80, path: \"/a b\"}}\n",
     "spec.containers[0].livenessProbe.httpGet.path: must not contain white space or control characters"},
    {POD CONTAINER "    livenessProbe: {sleep: {seconds: 1}}\n",
     "spec.containers[0].livenessProbe.sleep: unknown field"},
    {POD CONTAINER "    lifecycle: {preStop: {tcpSocket: {port: 80}}}\n",
     "spec.containers[0].lifecycle.preStop.tcpSocket: not supported here"},
    {POD CONTAINER "    lifecycle: {preStop: {sleep: {seconds: 11}}}\n",
     "spec.containers[0].lifecycle.preStop.sleep.seconds: must not exceed terminationGracePeriodSeconds (10)"},
    {POD CONTAINER "    lifecycle: {stopSignal: TERM}\n",
     "spec.containers[0].lifecycle.stopSignal: must be a signal name like SIGTERM or SIGUSR1, not \"TERM\""},
    {POD CONTAINER "    lifecycle: {postStart: {exec: {command: []}}}\n",
     "spec.containers[0].lifecycle.postStart.exec.command: must hold at least one element"},
    {POD "  initContainers:\n  - {name: i, image: /i, args: [x], readinessProbe: {exec: {command: [x]}}}\n" CONTAINER,
     "spec.initContainers[0].readinessProbe: may not be set for init containers without restartPolicy: Always"},
};

Test(manifest_probe, errors_name_the_field)
{
    for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
        struct pea_error err = {0};
        AUTO_MANIFEST struct pea_pod_manifest *m = parse(error_cases[i].text, &err);
        cr_assert_null(m, "expected a failure for:\n%s", error_cases[i].text);
        cr_expect_str_eq(err.msg, error_cases[i].message, "for:\n%s", error_cases[i].text);
    }
}

Test(manifest_probe, every_error_of_the_probes_and_hooks)
{
    static const char text[] =
        POD CONTAINER
        "    livenessProbe:\n"
        "      httpGet: {port: nope, path: 'a b', host: '', scheme: FTP,"
        " httpHeaders: [{name: 'Bad Name', value: \"x\\ny\"}, {value: 1}]}\n"
        "      periodSeconds: -1\n"
        "      successThreshold: 2\n"
        "      extra: 1\n"
        "    readinessProbe: {exec: {command: []}, terminationGracePeriodSeconds: 3, failureThreshold: x}\n"
        "    startupProbe: {tcpSocket: {port: 70000}, grpc: {port: 1}}\n"
        "    lifecycle:\n"
        "      postStart: {tcpSocket: {port: 1}}\n"
        "      preStop: {sleep: {}}\n"
        "      stopSignal: TERM\n";
    static const char *const expected[] = {
        "spec.containers[0].livenessProbe.httpGet.port: no port named \"nope\" in the container's ports",
        "spec.containers[0].livenessProbe.httpGet.path: must not contain white space or control characters",
        "spec.containers[0].livenessProbe.httpGet.host: must be an address or a host name, not \"\"",
        "spec.containers[0].livenessProbe.httpGet.scheme: must be one of \"HTTP\", \"HTTPS\", not \"FTP\"",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name: must be an HTTP header name, not \"Bad Name\"",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value: must not contain line breaks",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders[1].value: must be a string",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders[1].name: missing",
        "spec.containers[0].livenessProbe.periodSeconds: must be between 0 and 2147483647",
        "spec.containers[0].livenessProbe.successThreshold: must be 1 for liveness and startup probes",
        "spec.containers[0].livenessProbe.extra: unknown field",
        "spec.containers[0].readinessProbe.exec.command: must hold at least one element",
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: must not be set for readiness probes",
        "spec.containers[0].readinessProbe.failureThreshold: must be an integer",
        "spec.containers[0].startupProbe: may not set more than one handler (tcpSocket and grpc)",
        "spec.containers[0].lifecycle.postStart.tcpSocket: not supported here",
        "spec.containers[0].lifecycle.preStop.sleep.seconds: missing",
        "spec.containers[0].lifecycle.stopSignal: must be a signal name like SIGTERM or SIGUSR1, not \"TERM\"",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}

Test(manifest_probe, each_probe_of_an_init_container_without_restart_always)
{
    static const char text[] =
        POD CONTAINER
        "  initContainers:\n  - name: i\n    image: /img\n    args: [sh]\n"
        "    readinessProbe: {exec: {command: [x]}}\n    lifecycle: {stopSignal: nope}\n";
    static const char *const expected[] = {
        "spec.initContainers[0].readinessProbe: may not be set for init containers without restartPolicy: Always",
        "spec.initContainers[0].lifecycle: may not be set for init containers without restartPolicy: Always",
    };
    expect_error_lines(text, expected, ARRAY_SIZE(expected));
}
