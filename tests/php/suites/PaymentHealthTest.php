<?php
/**
 * Hourly payment health reports from the gateway's orders table, stored by the real control
 * plane once per hour and figures, delivered later when it was down.
 *
 * @package Molam_Form_Tests
 */

/**
 * Molam_Form_Payment_Health against MariaDB and the real control plane.
 */
class PaymentHealthTest extends Molam_Form_TestCase {

	/**
	 * The query for the gateway fixture: its orders table, and a meta table shaped like
	 * WooCommerce's `wc_orders_meta` for the failure class and the payment call's latency.
	 */
	const QUERY = "SELECT o.created_at, CASE WHEN o.status = 'paid' THEN 'succeeded' WHEN o.status = 'failed' THEN COALESCE(fc.meta_value, 'declined') ELSE 'pending' END AS outcome, lat.meta_value AS latency_ms
FROM {prefix}molam_orders o
LEFT JOIN {prefix}molam_orders_meta fc ON fc.order_id = o.id AND fc.meta_key = '_molam_failure_class'
LEFT JOIN {prefix}molam_orders_meta lat ON lat.order_id = o.id AND lat.meta_key = '_molam_payment_latency_ms'
WHERE o.merchant_ref LIKE 'PH-%' AND o.created_at >= :since AND o.created_at < :until";

	/**
	 * Start of the current UTC hour.
	 *
	 * @var int
	 */
	private $hour;

	/**
	 * "Now" of the runs: a minute into that hour (the test does not depend on the clock's minute).
	 *
	 * @var int
	 */
	private $now;

	protected function setUp(): void {
		global $wpdb;
		parent::setUp();
		$wpdb->query( "DROP TABLE IF EXISTS {$wpdb->prefix}molam_orders_meta" );
		$wpdb->query( "CREATE TABLE {$wpdb->prefix}molam_orders_meta (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, order_id BIGINT UNSIGNED NOT NULL, meta_key VARCHAR(255) NOT NULL, meta_value TEXT NULL) ENGINE=InnoDB" );
		$this->set_settings( array( 'payment_health_query' => self::QUERY ) );
		$this->hour = intdiv( time(), 3600 ) * 3600;
		$this->now  = $this->hour + 60;
		// Two complete hours: H-2 (4 paid, 1 declined, 1 fraud, 1 pending) and H-1 (2 paid, 1 failed without class).
		$h2 = $this->hour - 7200;
		$h1 = $this->hour - 3600;
		foreach ( array( 100, 200, 300, 400 ) as $i => $ms ) {
			$this->order( $h2 + 60 * $i, 'paid', $ms );
		}
		$this->order( $h2 + 600, 'failed', 900, 'declined' );
		$this->order( $h2 + 3599, 'failed', null, 'fraud' );
		$this->order( $h2 + 700, 'pending', 50 );
		$this->order( $h1, 'paid', 120 );
		$this->order( $h1 + 1800, 'paid', 80 );
		$this->order( $h1 + 1900, 'failed', 5000 );
		// The current hour is never sent; this order must not appear anywhere.
		$this->order( $this->hour, 'paid', 10 );
	}

	protected function tearDown(): void {
		global $wpdb;
		$wpdb->query( "DROP TABLE IF EXISTS {$wpdb->prefix}molam_orders_meta" );
		parent::tearDown();
	}

	/**
	 * Insert one order (and its meta rows).
	 *
	 * @param int         $at      Unix time (UTC).
	 * @param string      $status  paid | failed | pending.
	 * @param int|null    $latency Payment call latency, ms.
	 * @param string|null $class   Failure class.
	 */
	private function order( $at, $status, $latency, $class = null ) {
		global $wpdb;
		$wpdb->insert(
			$wpdb->prefix . 'molam_orders',
			array(
				'merchant_ref' => 'PH-' . bin2hex( random_bytes( 4 ) ),
				'amount_cents' => 2500,
				'status'       => $status,
				'created_at'   => gmdate( 'Y-m-d H:i:s', $at ),
			)
		);
		$id = $wpdb->insert_id;
		foreach ( array( '_molam_payment_latency_ms' => $latency, '_molam_failure_class' => $class ) as $key => $value ) {
			if ( null !== $value ) {
				$wpdb->insert( $wpdb->prefix . 'molam_orders_meta', array( 'order_id' => $id, 'meta_key' => $key, 'meta_value' => (string) $value ) );
			}
		}
	}

	/**
	 * The control plane's payment-health rows of this test's plugin, oldest hour first.
	 *
	 * @return array
	 */
	private function cp_reports() {
		return $this->cp_rows( 'SELECT * FROM payment_health_reports WHERE plugin_name = ? ORDER BY hour', array( $this->plugin ) );
	}

	/**
	 * Idempotency records the control plane kept for payment-health reports of this test.
	 *
	 * @param string[] $keys Keys.
	 * @return string[]
	 */
	private function cp_keys( $keys ) {
		$marks = implode( ',', array_fill( 0, count( $keys ), '?' ) );
		$rows  = array_column( $this->cp_rows( "SELECT key FROM api_idempotency_records WHERE key IN ($marks)", $keys ), 'key' );
		sort( $rows );
		return $rows;
	}

	/**
	 * Assert the two hours the control plane stored for this test, figure for figure.
	 */
	private function assertTwoHoursStored() {
		$rows = $this->cp_reports();
		$this->assertCount( 2, $rows, wp_json_encode( $rows ) );
		$this->assertSame( gmdate( 'Y-m-d H:i:s', $this->hour - 7200 ), substr( $rows[0]['hour'], 0, 19 ) );
		$this->assertSame( gmdate( 'Y-m-d H:i:s', $this->hour - 3600 ), substr( $rows[1]['hour'], 0, 19 ) );
		$this->assertSame( str_replace( '-', '', getenv( 'MOLAM_TEST_MERCHANT' ) ), str_replace( '-', '', $rows[0]['merchant_id'] ) );
		$this->assertSame( array( '3.9.0', '3.9.0' ), array_column( $rows, 'installed_version' ) );
		$this->assertSame( array( 6, 3 ), array_map( 'intval', array_column( $rows, 'attempted' ) ) );
		$this->assertSame( array( 4, 2 ), array_map( 'intval', array_column( $rows, 'succeeded' ) ) );
		$this->assertSame( array( 2, 1 ), array_map( 'intval', array_column( $rows, 'failed' ) ) );
		$this->assertEquals( array( 'declined' => 1, 'fraud' => 1 ), json_decode( $rows[0]['failed_by_reason'], true ) );
		$this->assertEquals( array( 'declined' => 1 ), json_decode( $rows[1]['failed_by_reason'], true ) );
		// H-2 latencies 100, 200, 300, 400, 900 (the fraud order has none; pending is left out).
		$this->assertSame( array( 5, 3 ), array_map( 'intval', array_column( $rows, 'latency_count' ) ) );
		$this->assertSame( array( 300.0, 120.0 ), array_map( 'floatval', array_column( $rows, 'latency_p50_ms' ) ) );
		$this->assertSame( array( 900.0, 5000.0 ), array_map( 'floatval', array_column( $rows, 'latency_p95_ms' ) ) );
	}

	public function test_two_complete_hours_are_stored_once_and_a_rerun_sends_nothing_new() {
		$result = Molam_Form_Payment_Health::report( $this->now );

		$this->assertSame( 'success', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( array( gmdate( 'Y-m-d\TH:00:00\Z', $this->hour - 7200 ), gmdate( 'Y-m-d\TH:00:00\Z', $this->hour - 3600 ) ), $result['hours'] );
		$this->assertSame( array( 'sent' => 2, 'dead' => 0, 'pending' => 0 ), $result['outbox'] );
		$this->assertSame( $this->hour - 3600, (int) get_option( Molam_Form_Payment_Health::LAST_HOUR ) );
		$this->assertTwoHoursStored();
		$updated = array_column( $this->cp_reports(), 'updated_at' );

		// Same hour: the cron entry point sees no new complete hour.
		$this->assertNull( Molam_Form_Payment_Health::maybe_report( $this->now + 600 ) );
		// A forced re-run re-reads the same two hours: same figures, same keys, nothing sent.
		$again = Molam_Form_Payment_Health::report( $this->now + 600 );
		$this->assertSame( 'success', $again['status'], wp_json_encode( $again ) );
		$this->assertSame( array( 'sent' => 0, 'dead' => 0, 'pending' => 0 ), $again['outbox'] );
		$this->assertSame( $updated, array_column( $this->cp_reports(), 'updated_at' ) );
		$this->assertTwoHoursStored();
	}

	public function test_late_figures_for_an_hour_replace_the_earlier_ones() {
		Molam_Form_Payment_Health::report( $this->now );
		$this->order( $this->hour - 3600 + 10, 'paid', 100 );

		$again = Molam_Form_Payment_Health::report( $this->now + 600 );

		$this->assertSame( array( 'sent' => 1, 'dead' => 0, 'pending' => 0 ), $again['outbox'] );
		$rows = $this->cp_reports();
		$this->assertCount( 2, $rows );
		$this->assertSame( array( 6, 4 ), array_map( 'intval', array_column( $rows, 'attempted' ) ) );
	}

	public function test_the_wp_cron_job_reports_hourly_through_the_real_hook() {
		self::cron();

		$this->assertSame( 'success', get_option( 'molam_form_payment_health_last_run' )['status'] );
		$this->assertTwoHoursStored();
	}

	public function test_with_the_control_plane_down_the_reports_wait_and_are_delivered_later_once() {
		$this->set_settings( array( 'payment_health_query' => self::QUERY, 'api_url' => self::dead_url() ) );

		$down = Molam_Form_Payment_Health::report( $this->now );

		$this->assertSame( 'success', $down['status'], wp_json_encode( $down ) );
		$this->assertSame( array( 'sent' => 0, 'dead' => 0, 'pending' => 2 ), $down['outbox'] );
		$this->assertSame( array(), $this->cp_reports() );
		$keys = array_column( Molam_Form_Outbox::pending(), 'key' );
		$this->assertCount( 2, $keys );
		$this->assertSame( $this->hour - 3600, (int) get_option( Molam_Form_Payment_Health::LAST_HOUR ) );

		// Back up: the next run re-reads the same hours (the same keys: nothing queued twice) and delivers the queue.
		$this->set_settings( array( 'payment_health_query' => self::QUERY ) );
		$later = Molam_Form_Payment_Health::report( $this->now + 600 );
		$this->assertSame( array( 'sent' => 2, 'dead' => 0, 'pending' => 0 ), $later['outbox'] );
		$this->assertTwoHoursStored();
		sort( $keys );
		$this->assertSame( $keys, $this->cp_keys( $keys ) );
		$this->assertSame( array( 'sent' => 0, 'dead' => 0, 'pending' => 0 ), Molam_Form_Outbox::flush() );
		$this->assertCount( 2, $this->cp_reports() );
	}

	public function test_hours_missed_while_wp_cron_was_idle_are_caught_up() {
		update_option( Molam_Form_Payment_Health::LAST_HOUR, $this->hour - 6 * 3600, false );
		$this->set_settings( array( 'payment_health_query' => self::QUERY, 'payment_health_hours' => 1 ) );

		$this->assertSame( array( $this->hour - 5 * 3600, $this->hour ), Molam_Form_Payment_Health::window( $this->now ) );
		$this->assertCount( 2, Molam_Form_Payment_Health::report( $this->now )['hours'] );
		$this->assertSame( array( $this->hour - 3600, $this->hour ), Molam_Form_Payment_Health::window( $this->now ) );
	}

	public function test_the_key_is_the_agents_for_the_same_body() {
		$body = array(
			'merchant_id'       => getenv( 'MOLAM_TEST_MERCHANT' ),
			'plugin_name'       => 'woocommerce',
			'installed_version' => '4.0.0',
			'hour'              => '2026-11-29T08:00:00Z',
			'attempted'         => 3,
			'succeeded'         => 2,
			'failed_by_reason'  => (object) array( 'declined' => 1 ),
			'latency_ms'        => array( 'count' => 3, 'p50' => 120.0, 'p95' => 5000.5 ),
		);
		$script = 'import json, sys; from molam_agent.payment_health import idempotency_key; print(idempotency_key(json.load(sys.stdin)))';
		list( $status, $out, $err ) = self::run_python( $script, wp_json_encode( $body, JSON_PRESERVE_ZERO_FRACTION ) );
		$python                     = trim( $out );

		$this->assertSame( 0, $status, $err );
		$this->assertSame( $python, Molam_Form_Payment_Health::idempotency_key( $body ), $err );
		$this->assertStringStartsWith( 'payment-health-', $python );
	}

	public function test_a_created_at_that_is_not_a_date_time_is_a_failed_run_not_a_payment_of_this_hour() {
		foreach ( array( 'NULL', "''", "'yesterday'", "'2026-13-45 10:00:00'", "'2026-02-30 10:00:00'" ) as $created ) {
			$this->set_settings( array( 'payment_health_query' => "SELECT $created AS created_at, 'succeeded' AS outcome, 10 AS latency_ms FROM DUAL WHERE :since < :until" ) );

			$result = Molam_Form_Payment_Health::report( $this->now );

			$this->assertSame( 'failed', $result['status'], "$created: " . wp_json_encode( $result ) );
			$this->assertStringContainsString( 'created_at must be a date-time', $result['error'] );
		}
		$this->assertFalse( get_option( Molam_Form_Payment_Health::LAST_HOUR ) );
		$this->assertSame( array(), Molam_Form_Outbox::pending() );
		$this->assertSame( array(), $this->cp_reports() );
	}

	public function test_a_query_that_fails_is_a_failed_run_and_remembers_nothing() {
		$this->set_settings( array() ); // The default query: WooCommerce's HPOS tables, absent here.

		$result = Molam_Form_Payment_Health::report( $this->now );

		$this->assertSame( 'failed', $result['status'] );
		$this->assertStringContainsString( 'wc_orders', $result['error'] );
		$this->assertFalse( get_option( Molam_Form_Payment_Health::LAST_HOUR ) );
		$this->assertSame( array(), Molam_Form_Outbox::pending() );
		$this->assertSame( array(), $this->cp_reports() );
	}
}
