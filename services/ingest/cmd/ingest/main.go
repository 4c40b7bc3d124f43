// Command ingest is the HTTP endpoint application servers send push messages to.
package main

import (
	"os"

	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/services/ingest/internal/app"
)

func main() {
	os.Exit(service.Main("ingest", &app.Config{}, os.Args[1:], os.Stderr, app.Run))
}
