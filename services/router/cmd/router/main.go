// Command router stores push messages and routes them to the gateway holding each user agent.
package main

import (
	"os"

	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/services/router/internal/app"
)

func main() {
	os.Exit(service.Main("router", &app.Config{}, os.Args[1:], os.Stderr, app.Run))
}
