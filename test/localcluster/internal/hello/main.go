// Command hello is the localcluster integration tests' app. Without arguments it answers
// every HTTP request on :$PORT (default 8080) with "hello from <hostname>". With the
// argument "whoami" it builds the in-cluster client configuration (service-account token,
// CA and KUBERNETES_SERVICE_HOST/PORT), asks the API server who it is and prints the user
// name. With "resolve NAME..." it looks each name up with the system resolver (so through
// the pod's /etc/resolv.conf) and prints one line per name: "NAME ok ADDR,ADDR" (sorted),
// "NAME notfound" for a name the DNS says does not exist, "NAME error ERR" otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "whoami" {
		whoami()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "resolve" {
		resolve(os.Args[2:])
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host, err := os.Hostname()
	if err != nil {
		log.Fatalf("hello: hostname: %v", err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s", host)
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}

func whoami() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("hello: in-cluster config: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("hello: client: %v", err)
	}
	r, err := client.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		log.Fatalf("hello: self-subject review via %s: %v", cfg.Host, err)
	}
	fmt.Printf("%s via %s", r.Status.UserInfo.Username, cfg.Host)
}

func resolve(names []string) {
	for _, name := range names {
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), name)
		var dnsErr *net.DNSError
		switch {
		case err == nil:
			slices.Sort(addrs)
			fmt.Printf("%s ok %s\n", name, strings.Join(addrs, ","))
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			fmt.Printf("%s notfound\n", name)
		default:
			fmt.Printf("%s error %v\n", name, err)
		}
	}
}
