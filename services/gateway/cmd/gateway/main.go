// Command gateway holds user agents' connections and delivers their messages.
package main

import (
	"os"

	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/services/gateway/internal/app"
)

func main() {
	os.Exit(service.Main("gateway", &app.Config{}, os.Args[1:], os.Stderr, app.Run))
}
