<?php
/**
 * WP-cron every ten minutes, one run at a time, uninstall clean-up.
 *
 * @package Molam_Form_Tests
 */

/**
 * Scheduling, the run lock and uninstall, against the real WordPress cron and plugin API.
 */
class SchedulingTest extends Molam_Form_TestCase {

	public function test_activation_schedules_the_check_every_ten_minutes_and_deactivation_stops_it() {
		molam_form_deactivate();
		$this->assertFalse( wp_next_scheduled( MOLAM_FORM_CRON_HOOK ) );

		molam_form_activate();

		$event = wp_get_scheduled_event( MOLAM_FORM_CRON_HOOK );
		$this->assertIsObject( $event );
		$this->assertSame( 'molam_form_ten_minutes', $event->schedule );
		$this->assertSame( 600, $event->interval );
	}

	public function test_the_cron_job_upgrades_through_the_real_wp_cron_hook() {
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release );

		$run = $this->child( array( 'cron' ) );

		$this->assertSame( 'success', $run['result']['status'], $run['stdout'] . $run['stderr'] );
		$this->assertSame( $release['tree'], self::tree( self::live_dir() ) );
		wp_cache_flush();
		$this->assertSame( 'success', get_option( 'molam_form_last_run' )['status'] );
	}

	public function test_two_runs_never_overlap() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertTrue( Molam_Form_Store::lock(), 'this process holds the lock, as a running upgrade would' );

		$run = $this->child( array( 'cron' ) );

		Molam_Form_Store::unlock();
		$this->assertSame( 'skipped', $run['result']['status'], $run['stdout'] . $run['stderr'] );
		$this->assertSame( 'another upgrade run is in progress for this plugin', $run['result']['reason'] );
		$this->assertWhollyOld();
		$this->assertSame( 'success', $this->child( array( 'cron' ) )['result']['status'], 'the lock is free again' );
	}

	public function test_a_work_folder_that_cannot_be_created_fails_each_step_of_the_cron_job_cleanly() {
		// A file where the work folder belongs: no work folder, so no lock file either.
		wp_mkdir_p( dirname( Molam_Form_Settings::work_dir() ) );
		file_put_contents( Molam_Form_Settings::work_dir(), 'not a folder' );
		$this->set_settings( array( 'payment_health_query' => 'SELECT NOW(), NULL, NULL FROM DUAL WHERE :since < :until' ) );

		$run = $this->child( array( 'cron' ) );

		$this->assertSame( 0, $run['exit'], $run['stdout'] . $run['stderr'] );
		$this->assertSame( 'failed', $run['result']['status'], $run['stdout'] . $run['stderr'] );
		$this->assertStringContainsString( 'cannot create', $run['result']['error'] );
		foreach ( array( 'molam_form_last_run', 'molam_form_payment_health_last_run', Molam_Form_Housekeeping::LAST_RUN ) as $row ) {
			$last = get_option( $row );
			$this->assertSame( 'failed', $last['status'] ?? null, "$row: " . wp_json_encode( $last ) );
			$this->assertStringContainsString( 'cannot create', $last['error'] );
		}
		$this->assertFalse( get_option( Molam_Form_Payment_Health::LAST_HOUR ), 'no hour is remembered as read' );
		$this->assertWhollyOld();
	}

	public function test_a_lock_held_by_a_killed_process_is_free_again() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 9, $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'downloaded' ) )['signal'] );

		$run = $this->child( array( 'cron' ) );

		$this->assertSame( 'success', $run['result']['status'], $run['stdout'] );
		$logs = $this->cp_upgrades();
		$this->assertSame( array( 'failed', 'success' ), array_column( $logs, 'status' ), 'the interrupted run was recovered (on WordPress load) and reported first' );
		$this->assertStringContainsString( "interrupted at step 'downloaded'", $logs[0]['error_message'] ?? $logs[0]['error'] ?? '' );
	}

	public function test_uninstall_removes_everything_molam_form_stored() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$work = Molam_Form_Settings::work_dir();
		$this->assertDirectoryExists( $work );
		$this->assertNotEmpty( get_option( Molam_Form_Outbox::RESULTS ), 'the outbox holds the answers of the run' );
		$this->assertNotEmpty( get_option( Molam_Form_Outbox::SEQ ) );

		$code = 'require getenv("MOLAM_TEST_WP_DIR") . "/wp-load.php"; require_once ABSPATH . "wp-admin/includes/plugin.php"; uninstall_plugin("molam-form/molam-form.php");';
		$proc = proc_open( array( PHP_BINARY, '-r', '$_SERVER["HTTP_HOST"] = "127.0.0.1"; ' . $code ), array( 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes );
		$err  = stream_get_contents( $pipes[2] );
		$err .= stream_get_contents( $pipes[1] );
		$this->assertSame( 0, proc_close( $proc ), $err );
		wp_cache_flush();
		clearstatcache();

		global $wpdb;
		$this->assertSame( array(), $wpdb->get_col( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'molam\\_form\\_%'" ) );
		$this->assertFalse( wp_next_scheduled( MOLAM_FORM_CRON_HOOK ) );
		$this->assertDirectoryDoesNotExist( $work );
		$this->assertDirectoryExists( self::live_dir(), 'the managed plugin itself stays' );
		$this->assertSame( $this->orders_before, $this->orders(), 'and so do its orders' );
	}
}
