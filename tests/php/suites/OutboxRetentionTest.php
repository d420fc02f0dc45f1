<?php
/**
 * The outbox cleans up after itself: the WP-cron job forgets answers older than 7 days, never a
 * queued report, and the rows stay out of the options WordPress autoloads.
 *
 * @package Molam_Form_Tests
 */

/**
 * Retention of the options-backed outbox, through the real WP-cron hook and control plane.
 */
class OutboxRetentionTest extends Molam_Form_TestCase {

	protected function setUp(): void {
		parent::setUp();
		self::no_payment_hour_due(); // These runs are about the outbox alone.
	}

	/**
	 * The stored answers, fresh from the database.
	 *
	 * @return array
	 */
	private static function results() {
		wp_cache_flush();
		return (array) get_option( Molam_Form_Outbox::RESULTS, array() );
	}

	/**
	 * Store answers as if they had been received `$age` seconds ago.
	 *
	 * @param array<string, int> $ages Key => age in seconds.
	 */
	private static function seed_answers( $ages ) {
		$results = self::results();
		foreach ( $ages as $key => $age ) {
			$results[ $key ] = array(
				'answer' => array(
					'ok'  => true,
					'key' => $key,
				),
				'at'     => time() - $age,
			);
		}
		update_option( Molam_Form_Outbox::RESULTS, $results, false );
		wp_cache_flush();
	}

	public function test_the_cron_job_forgets_answers_older_than_seven_days_and_keeps_newer_ones() {
		self::seed_answers(
			array(
				'month-old'   => 30 * self::DAY,
				'eight-days'  => 8 * self::DAY,
				'six-days'    => 6 * self::DAY,
				'just-now'    => 60,
			)
		);
		self::enqueue_failed_upgrade( 'sent-by-this-run' );

		self::cron();

		$kept = array_keys( self::results() );
		sort( $kept );
		$this->assertSame( array( 'just-now', 'sent-by-this-run', 'six-days' ), $kept );
		$this->assertSame( array(), Molam_Form_Outbox::pending() );
		$this->assertCount( 1, $this->cp_upgrades(), 'the queued report was delivered once by the same run' );
	}

	public function test_the_retention_is_filterable_and_never_under_an_hour() {
		self::seed_answers(
			array(
				'two-days' => 2 * self::DAY,
				'half-day' => self::DAY / 2,
				'minutes'  => 600,
			)
		);
		$one_day = fn() => self::DAY;
		add_filter( 'molam_form_outbox_results_retention_s', $one_day );
		try {
			self::cron();
			$this->assertSame( array( 'half-day', 'minutes' ), array_keys( self::results() ) );

			remove_filter( 'molam_form_outbox_results_retention_s', $one_day );
			$zero = fn() => 0;
			add_filter( 'molam_form_outbox_results_retention_s', $zero );
			self::cron();
			$this->assertSame( array( 'minutes' ), array_keys( self::results() ), 'a retention of 0 is an hour' );
		} finally {
			remove_all_filters( 'molam_form_outbox_results_retention_s' );
		}
	}

	public function test_queued_reports_are_never_pruned_and_the_answer_they_wait_for_is_kept_whatever_its_age() {
		// A rollback's initiate was answered a month ago; its completion still waits, and so
		// does a month-old report the control plane never received.
		Molam_Form_Outbox::enqueue(
			'POST',
			'rollback/initiate',
			array(
				'from_version' => '4.0.0',
				'to_version'   => '3.9.0',
				'trigger'      => 'automatic',
				'reason'       => 'smoke test failed',
			),
			'old-tx-initiate'
		);
		$this->assertSame( 1, Molam_Form_Outbox::flush()['sent'] );
		$rollback_id = Molam_Form_Outbox::result( 'old-tx-initiate' )['rollback_id'] ?? null;
		$this->assertNotNull( $rollback_id, wp_json_encode( Molam_Form_Outbox::result( 'old-tx-initiate' ) ) );
		$results                                = self::results();
		$results['old-tx-initiate']['at']      -= 30 * self::DAY;
		update_option( Molam_Form_Outbox::RESULTS, $results, false );
		self::seed_answers( array( 'unrelated-old' => 30 * self::DAY ) );

		$this->set_settings( array( 'api_url' => self::dead_url() ) );
		Molam_Form_Outbox::enqueue(
			'POST',
			'rollback/{rollback_id}/complete',
			array(
				'success'        => true,
				'duration_ms'    => 1200,
				'files_restored' => 12,
				'db_restored'    => true,
			),
			'old-tx-complete',
			'old-tx-initiate'
		);
		self::enqueue_failed_upgrade( 'never-received' );
		$queue = get_option( Molam_Form_Outbox::QUEUE );
		foreach ( $queue as $key => $entry ) {
			$queue[ $key ]['created_at'] = microtime( true ) - 30 * self::DAY;
			$queue[ $key ]['attempts']   = 40;
		}
		update_option( Molam_Form_Outbox::QUEUE, $queue, false );

		self::cron();

		$this->assertSame( array( 'old-tx-complete', 'never-received' ), array_column( Molam_Form_Outbox::pending(), 'key' ), 'both reports still wait' );
		$this->assertSame( array( 'old-tx-initiate' ), array_keys( self::results() ), 'the answer the completion waits for stays; the other month-old one goes' );
		$this->assertSame( array(), Molam_Form_Outbox::dead() );

		$this->set_settings( array() );
		self::cron();

		$this->assertSame( array(), Molam_Form_Outbox::pending() );
		$this->assertSame( array(), Molam_Form_Outbox::dead() );
		$rollbacks = $this->cp_rollbacks();
		$this->assertCount( 1, $rollbacks );
		$this->assertSame( str_replace( '-', '', (string) $rollback_id ), str_replace( '-', '', (string) $rollbacks[0]['rollback_id'] ) );
		$this->assertSame( 1, (int) $rollbacks[0]['success'] );
		$this->assertNotNull( $rollbacks[0]['completed_at'], 'the completion reached the rollback the month-old answer named' );
		$this->assertSame( 1, array_count_values( array_filter( array_column( $this->cp_upgrades(), 'error' ) ) )['report never-received'] ?? 0, 'the month-old report was delivered, once' );
		$kept = array_keys( self::results() );
		sort( $kept );
		$this->assertSame( array( 'never-received', 'old-tx-complete' ), $kept, 'once nothing waits for it, the month-old answer goes too' );
	}

	public function test_at_most_the_newest_answers_are_kept_within_the_retention() {
		$ages = array();
		for ( $i = 0; $i < Molam_Form_Outbox::RESULTS_MAX + 20; $i++ ) {
			$ages[ "recent-$i" ] = 60 + $i; // recent-0 is the newest.
		}
		self::seed_answers( $ages );

		self::cron();

		$kept = self::results();
		$this->assertCount( Molam_Form_Outbox::RESULTS_MAX, $kept );
		$this->assertArrayHasKey( 'recent-0', $kept );
		$this->assertArrayHasKey( 'recent-' . ( Molam_Form_Outbox::RESULTS_MAX - 1 ), $kept );
		$this->assertArrayNotHasKey( 'recent-' . Molam_Form_Outbox::RESULTS_MAX, $kept );
	}

	public function test_a_run_that_cannot_take_the_lock_prunes_nothing_and_the_next_one_does() {
		self::seed_answers( array( 'eight-days' => 8 * self::DAY ) );
		$this->assertTrue( Molam_Form_Store::lock(), 'this process holds the lock, as a running upgrade would' );

		$run = $this->child( array( 'cron' ) );

		Molam_Form_Store::unlock();
		$this->assertSame( 'skipped', $run['result']['status'], $run['stdout'] . $run['stderr'] );
		// The job's result is the upgrade's; the clean-up's own is kept in its last-run row.
		$this->assertSame( 'skipped', get_option( Molam_Form_Housekeeping::LAST_RUN )['status'] );
		$this->assertArrayHasKey( 'eight-days', self::results() );
		$next = $this->child( array( 'cron' ) );
		$this->assertSame( '', $next['stderr'] );
		wp_cache_flush();
		$this->assertSame( 'success', get_option( Molam_Form_Housekeeping::LAST_RUN )['status'] );
		$this->assertSame( 1, get_option( Molam_Form_Housekeeping::LAST_RUN )['pruned_results'] );
		$this->assertArrayNotHasKey( 'eight-days', self::results() );
	}

	public function test_the_outbox_rows_are_not_autoloaded() {
		global $wpdb;
		self::enqueue_failed_upgrade( 'accepted' );
		Molam_Form_Outbox::enqueue( 'POST', 'upgrades', array( 'from_version' => 'not a version', 'to_version' => '4.0.0', 'status' => 'failed' ), 'refused' );
		$this->assertSame( array( 'sent' => 1, 'dead' => 1, 'pending' => 0 ), Molam_Form_Outbox::flush() );
		$this->set_settings( array( 'api_url' => self::dead_url() ) );
		self::enqueue_failed_upgrade( 'waiting' );
		$names = array( Molam_Form_Outbox::QUEUE, Molam_Form_Outbox::SEQ, Molam_Form_Outbox::RESULTS, Molam_Form_Outbox::DEAD );
		$in    = "'" . implode( "', '", $names ) . "'";
		$flags = fn() => $wpdb->get_results( "SELECT option_name, autoload FROM {$wpdb->options} WHERE option_name IN ($in) ORDER BY option_name", OBJECT_K );

		$rows = $flags();
		$this->assertCount( 4, $rows );
		foreach ( $rows as $name => $row ) {
			$this->assertSame( 'no', $row->autoload, "$name as written" );
		}

		// A row created autoloaded (an older build, an import) and not written since.
		$wpdb->query( "UPDATE {$wpdb->options} SET autoload = 'yes' WHERE option_name IN ($in)" );
		wp_cache_flush();
		$this->assertArrayHasKey( Molam_Form_Outbox::QUEUE, wp_load_alloptions() );

		self::cron();

		foreach ( $flags() as $name => $row ) {
			$this->assertSame( 'no', $row->autoload, "$name after the cron run" );
		}
		$autoloaded = wp_load_alloptions();
		foreach ( $names as $name ) {
			$this->assertArrayNotHasKey( $name, $autoloaded );
		}
		$this->assertSame( array( 'waiting' ), array_column( Molam_Form_Outbox::pending(), 'key' ) );
	}
}
