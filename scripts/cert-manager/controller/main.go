// The cert-manager controller, built by scripts/setup-kubernetes.sh from the pinned
// github.com/cert-manager/cert-manager module: the module proxy does not serve upstream's
// cmd/controller module, so this small main of our own wires the module's controllers (the
// default set minus Vault, Venafi and the ingress/gateway shims: see ../README.md) the way
// upstream's does: one controller context, leader election on a Lease, a liveness endpoint and
// optional Prometheus metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/cert-manager/cert-manager/internal/cmd/util"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	cmutil "github.com/cert-manager/cert-manager/pkg/util"

	// The controllers this binary runs (each registers itself with controller.Known()).
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuer types the (Cluster)Issuer controllers set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

type options struct {
	clusterResourceNamespace string
	leaderElectionNamespace  string
	leaderElect              bool
	healthzAddress           string
	metricsAddress           string
	workers                  int
	dns01Nameservers         stringList
	dns01RecursiveOnly       bool
}

type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	ctx, exit := util.SetupExitHandler(context.Background(), util.GracefulShutdown)
	defer exit() // may call os.Exit: deferred first, runs last

	logf.InitLogs()
	defer logf.FlushLogs()
	ctx = logf.NewContext(ctx, logf.Log, "controller")

	var o options
	flag.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "kube-system",
		"namespace of the Secrets ClusterIssuers refer to")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "kube-system",
		"namespace of the leader election Lease")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "run the controllers only while holding the Lease")
	flag.StringVar(&o.healthzAddress, "healthz-listen-address", "0.0.0.0:9403",
		"address of the liveness endpoint (/livez); empty: none")
	flag.StringVar(&o.metricsAddress, "metrics-listen-address", "0.0.0.0:9402",
		"address of the Prometheus metrics endpoint (plain HTTP); empty: none")
	flag.IntVar(&o.workers, "concurrent-workers", 5, "workers per controller")
	flag.Var(&o.dns01Nameservers, "dns01-recursive-nameservers",
		"host:port of a recursive nameserver for DNS-01 self-checks (repeatable); default: the system's")
	flag.BoolVar(&o.dns01RecursiveOnly, "dns01-recursive-nameservers-only", false,
		"check DNS-01 records against the recursive nameservers only")
	flag.Parse()

	if err := run(ctx, o); err != nil {
		logf.Log.Error(err, "error running the controller")
		util.SetExitCode(err)
	}
}

func run(rootCtx context.Context, o options) error {
	rootCtx, cancel := context.WithCancel(rootCtx)
	defer cancel()
	log := logf.FromContext(rootCtx)
	v := cmutil.VersionInfo()
	log.Info("starting cert-manager controller", "version", v.GitVersion, "go_version", v.GoVersion)

	nameservers := []string(o.dns01Nameservers)
	if len(nameservers) == 0 {
		nameservers = dnsutil.RecursiveNameservers
	}
	factory, err := controller.NewContextFactory(rootCtx, controller.ContextOptions{
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: o.clusterResourceNamespace,
			// Upstream's defaults: ambient credentials for ClusterIssuers only.
			ClusterIssuerAmbientCredentials: true,
		},
		ACMEOptions: controller.ACMEOptions{
			// This binary runs no HTTP-01 solver pods (no acmesolver image): DNS-01 only.
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01Nameservers:                  nameservers,
			DNS01CheckRetryPeriod:             10 * time.Second,
			DNS01CheckAuthoritative:           !o.dns01RecursiveOnly,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	ctx, err := factory.Build()
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(rootCtx)
	var lc net.ListenConfig
	if o.metricsAddress != "" {
		ln, err := lc.Listen(gctx, "tcp", o.metricsAddress)
		if err != nil {
			return fmt.Errorf("metrics address %s: %w", o.metricsAddress, err)
		}
		ctx.Metrics.SetupACMECollector(ctx.SharedInformerFactory.Acme().V1().Challenges().Lister())
		ctx.Metrics.SetupCertificateCollector(ctx.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
		ctx.Metrics.SetupIssuerCollector(ctx.SharedInformerFactory.Certmanager().V1().Issuers().Lister())
		ctx.Metrics.SetupClusterIssuerCollector(ctx.SharedInformerFactory.Certmanager().V1().ClusterIssuers().Lister())
		srv := ctx.Metrics.NewServer(ln)
		g.Go(func() error { return shutdownOnDone(gctx, srv) })
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	health := healthz.NewServer(20 * time.Second)
	if o.healthzAddress != "" {
		ln, err := lc.Listen(gctx, "tcp", o.healthzAddress)
		if err != nil {
			return fmt.Errorf("healthz address %s: %w", o.healthzAddress, err)
		}
		g.Go(func() error { return health.Start(gctx, ln) })
	}

	elected := make(chan struct{})
	if o.leaderElect {
		g.Go(func() error { return leaderElect(gctx, o, factory, health, elected) })
	} else {
		close(elected)
	}
	select {
	case <-gctx.Done():
		return g.Wait()
	case <-elected:
	}

	names := make([]string, 0, len(controller.Known()))
	for name, construct := range controller.Known() {
		c, err := construct(factory)
		if err != nil {
			cancel()
			return errors.Join(fmt.Errorf("controller %s: %w", name, err), g.Wait())
		}
		names = append(names, name)
		g.Go(func() error { return c.Run(o.workers, gctx) })
	}
	sort.Strings(names)
	log.Info("controllers started", "controllers", names)

	ctx.SharedInformerFactory.Start(gctx.Done())
	ctx.KubeSharedInformerFactory.Start(gctx.Done())
	ctx.HTTP01ResourceMetadataInformersFactory.Start(gctx.Done())
	err = g.Wait()
	ctx.HTTP01ResourceMetadataInformersFactory.Shutdown()
	ctx.KubeSharedInformerFactory.Shutdown()
	ctx.SharedInformerFactory.Shutdown()
	return err
}

func shutdownOnDone(ctx context.Context, srv *http.Server) error {
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx) //nolint:contextcheck // the parent is done
}

// leaderElect holds the cert-manager-controller Lease (as upstream's controller does) and closes
// elected when it has it; losing it ends the process.
func leaderElect(ctx context.Context, o options, factory *controller.ContextFactory, health *healthz.Server, elected chan struct{}) error {
	c, err := factory.Build("leader-election")
	if err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	lock, err := resourcelock.NewWithLabels(resourcelock.LeasesResourceLock, o.leaderElectionNamespace,
		"cert-manager-controller", c.Client.CoreV1(), c.Client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "-external-cert-manager-controller", EventRecorder: c.Recorder},
		map[string]string{"app.kubernetes.io/managed-by": "cert-manager"})
	if err != nil {
		return err
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   60 * time.Second,
		RenewDeadline:   40 * time.Second,
		RetryPeriod:     15 * time.Second,
		ReleaseOnCancel: true,
		WatchDog:        health.LeaderHealthzAdaptor,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(elected) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx) // returns when the context ends or the Lease is lost
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("leader election lost")
}
