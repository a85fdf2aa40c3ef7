// The cert-manager CA injector (copies a CA into webhook configurations, APIServices and CRDs
// annotated for it), built by scripts/setup-kubernetes.sh from the pinned
// github.com/cert-manager/cert-manager module: the module proxy does not serve upstream's
// cmd/cainjector module, so this main of our own runs the module's injectors
// (pkg/controller/cainjector) in a controller-runtime manager, with upstream's defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cert-manager/cert-manager/internal/cmd/util"
	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	cmutil "github.com/cert-manager/cert-manager/pkg/util"
)

func main() {
	ctx, exit := util.SetupExitHandler(context.Background(), util.GracefulShutdown)
	defer exit() // may call os.Exit: deferred first, runs last

	logf.InitLogs()
	defer logf.FlushLogs()
	ctrl.SetLogger(logf.Log) // controller-runtime's own messages, through the same logger
	ctx = logf.NewContext(ctx, logf.Log, "cainjector")

	leaderElectionNamespace := flag.String("leader-election-namespace", "kube-system",
		"namespace of the leader election Lease")
	leaderElect := flag.Bool("leader-elect", true, "inject only while holding the Lease")
	metricsAddress := flag.String("metrics-listen-address", "0.0.0.0:9402",
		`address of the Prometheus metrics endpoint; "0": none`)
	flag.Parse()

	if err := run(ctx, *leaderElect, *leaderElectionNamespace, *metricsAddress); err != nil {
		logf.Log.Error(err, "error running the CA injector")
		util.SetExitCode(err)
	}
}

func run(ctx context.Context, leaderElect bool, leaderElectionNamespace, metricsAddress string) error {
	log := logf.FromContext(ctx)
	v := cmutil.VersionInfo()
	log.Info("starting cert-manager cainjector", "version", v.GitVersion, "go_version", v.GoVersion)

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	// Upstream's defaults: a Lease of 60 s renewed within 40 s, retried every 15 s.
	lease, renew, retry := 60*time.Second, 40*time.Second, 15*time.Second
	restConfig := cmutil.RestConfigWithUserAgent(ctrl.GetConfigOrDie(), "cainjector")
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		// Secrets are read directly, never cached cluster-wide.
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		LeaderElection:                leaderElect,
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionID:              "cert-manager-cainjector-leader-election",
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionLabels:          map[string]string{"app.kubernetes.io/managed-by": "cert-manager-cainjector"},
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaseDuration:                 &lease,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddress},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     true,
			cainjector.CustomResourceDefinitionName:       true,
		},
	}); err != nil {
		return fmt.Errorf("registering the injectors: %w", err)
	}
	return mgr.Start(ctx)
}
