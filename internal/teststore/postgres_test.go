package teststore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A started server answers through a transaction-mode pgbouncer, and a
// Pause stops every one of its processes: a query on a connection opened
// before the pause is not answered until Resume.
func TestPostgresPauseStopsBackends(t *testing.T) {
	pg := StartPostgres(t, PostgresOptions{})
	bouncer := StartPgBouncer(t, pg, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, bouncer.URL+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	direct, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("through pgbouncer: %d, %v", one, err)
	}
	if err := pg.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err = direct.QueryRow(short, "SELECT 1").Scan(&one)
	cancelShort()
	if err == nil {
		t.Fatal("a paused server answered a query on an open connection")
	}
	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	if err := again.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
